"""The subscriber's time zone: a provider's zone replaces the stored one, a single-zone billing
country fills a gap only, an event without a zone changes nothing, and planned steps keep their
local time when such an event arrives."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.kernel import timezones
from hub.store import Action, Subscriber
from tests.conftest import ROOT
from tests.helpers import rows
from tests.subscribers.support import ev, feed, who


@pytest.fixture
def hub(make_hub):
    return make_hub(HUB_RULES_PATH=str(ROOT / "rules"))


def zone(hub) -> str | None:
    [subscriber] = rows(hub, Subscriber)
    return subscriber.timezone


def test_a_named_zone_is_kept_and_an_event_without_one_leaves_it(hub):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", "klaviyo",
                 subscriber=who("klaviyo", "01KANN", "ann@example.com", timezone="america/new_york")))
    assert zone(hub) == "America/New_York"
    feed(hub, ev("subscriber.updated", "2026-01-02T00:00:00Z", subscriber=who("stripe", "cus_1", "ann@example.com")))
    assert zone(hub) == "America/New_York"
    feed(hub, ev("subscriber.updated", "2026-01-03T00:00:00Z", subscriber=who("stripe", "cus_1", "ann@example.com",
                                                                              timezone="Not/AZone")))
    assert zone(hub) == "America/New_York"
    feed(hub, ev("subscriber.updated", "2026-01-04T00:00:00Z", "hubspot",
                 subscriber=who("hubspot", "4051", "ann@example.com", timezone="Europe/Lisbon")))
    assert zone(hub) == "Europe/Lisbon"


def test_a_country_fills_a_gap_only_and_only_with_a_single_zone(hub):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z", "shopify",
                 subscriber=who("shopify", "7", "ann@example.com", country="US")))
    assert zone(hub) is None   # the United States have many zones: no guess
    feed(hub, ev("subscriber.updated", "2026-01-02T00:00:00Z", "shopify",
                 subscriber=who("shopify", "7", "ann@example.com", country="fr")))
    assert zone(hub) == "Europe/Paris"
    feed(hub, ev("subscriber.updated", "2026-01-03T00:00:00Z", "shopify",
                 subscriber=who("shopify", "7", "ann@example.com", timezone="Europe/Berlin")))
    feed(hub, ev("subscriber.updated", "2026-01-04T00:00:00Z", "shopify",
                 subscriber=who("shopify", "7", "ann@example.com", country="PT")))
    assert zone(hub) == "Europe/Berlin"   # a named zone is not replaced by a country's


def test_planned_steps_keep_the_subscribers_local_time_when_a_later_event_has_no_zone(hub):
    ann = who("stripe", "cus_1", "ann@example.com", timezone="America/New_York")
    sub = {"id": "sub_1", "status": "active", "plan": {"id": "p", "name": "Pro", "interval": "year",
                                                       "interval_count": 1},
           "current_period_end": "2031-06-01T00:00:00Z"}
    feed(hub, ev("subscription.created", "2030-01-01T00:00:00Z", subscriber=ann, subscription=sub))
    feed(hub, ev("subscription.renewal_upcoming", "2030-01-02T00:00:00Z",
                 subscriber=who("stripe", "cus_1", "ann@example.com"), subscription=sub))
    with hub.store.session() as s:
        due = s.execute(select(Action.step, Action.due_at).where(Action.rule_id == "renewal-reminder",
                                                                 Action.status == "scheduled")).all()
    # 09:00 in New York (summer time: 13:00Z), for every step, never 09:00Z
    assert due and {d.due_at.strftime("%H:%M") for d in due} == {"13:00"}


def test_single_zone_countries_from_the_tz_database():
    assert [timezones.of_country(c) for c in ("FR", "jp", "US", "RU", "XX", "", None)] == [
        "Europe/Paris", "Asia/Tokyo", None, None, None, None, None]
