"""Segments, tiers, derived events and proration through the pipeline; the periodic sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.kernel.values import rfc3339
from hub.segments.sweep import recompute_all
from hub.store import Event, Subscriber, utcnow
from hub.store.subscriber_models import SegmentMembership
from tests.helpers import rows
from tests.subscribers.support import ev, feed, money, rules_dir, sub, who


@pytest.fixture
def hub(make_hub, tmp_path):
    return make_hub(HUB_RULES_PATH=rules_dir(tmp_path))


def ago(**delta) -> str:
    return rfc3339(utcnow() - timedelta(**delta))


def derived(hub, type_: str) -> list[Event]:
    return rows(hub, Event, Event.origin == "derived", Event.type == type_)


def members(hub, segment: str) -> set[int]:
    return {m.subscriber_id for m in rows(hub, SegmentMembership, SegmentMembership.segment == segment)}


def test_lifecycle_stages_tier_and_their_derived_events(hub):
    ann = who("stripe", "cus_A", "ann@x.com")
    feed(hub, ev("subscription.created", ago(days=20), subscriber=ann, subscription=sub("sub_A", "active", 2900)))
    (person,) = rows(hub, Subscriber)
    assert person.segments == ["subscribers"] and person.tier == "bronze"
    (entered,) = derived(hub, "segment.entered")
    assert entered.data["segment"] == {"id": "subscribers", "lifecycle": True, "stage": "subscribers"}
    assert entered.subscriber_id == person.id
    (mrr,) = derived(hub, "mrr.changed")
    assert mrr.data["mrr"]["movement"] == "new" and mrr.data["mrr"]["delta"] == money(2900)

    # clicks and an order: recent actions weighted most -> engaged
    feed(hub, ev("message.clicked", ago(days=2), "klaviyo", subscriber={"email": "ann@x.com"}),
         ev("order.paid", ago(days=1), "shopify", subscriber=who("shopify", "77", "ann@x.com"),
            order={"total": money(15000)}))
    (person,) = rows(hub, Subscriber)
    assert person.segments == ["engaged", "engaged-sync"]  # a lifecycle stage and a custom segment
    assert person.total_paid_minor == 15000 and person.points == 150 and person.tier == "silver"
    (tier,) = derived(hub, "tier.changed")  # the first assignment (bronze) is not a change
    assert tier.data["tier"] == {"from": "bronze", "to": "silver", "points": 150}
    assert {e.data["segment"]["id"] for e in derived(hub, "segment.exited")} == {"subscribers"}

    # cancellation scheduled -> at-risk (first lifecycle stage that holds)
    in_a_month = rfc3339(utcnow() + timedelta(days=30))
    feed(hub, ev("subscription.cancellation_scheduled", ago(hours=1), subscriber=ann,
                 subscription=sub("sub_A", "active", 2900, cancel_at=in_a_month)))
    assert rows(hub, Subscriber)[0].segments == ["at-risk"]


def test_replayed_event_derives_nothing_twice(hub):
    event = ev("subscription.created", ago(days=1), subscriber=who("stripe", "cus_R", "r@x.com"),
               subscription=sub("sub_R", "active", 1000))
    feed(hub, event)
    before = len(rows(hub, Event))
    feed(hub, event)
    assert len(rows(hub, Event)) == before


def test_payment_recovered_after_a_failure_on_the_same_subscription(hub):
    bo = who("chargebee", "cb_B", "bo@x.com")
    feed(hub, ev("subscription.created", ago(days=40), "chargebee", subscriber=bo,
                 subscription=sub("cb_sub", "active", 1000)),
         ev("payment.failed", ago(days=3), "chargebee", subscriber=bo,
            payment={"amount": money(1000), "subscription_id": "cb_sub", "attempt": 1}),
         ev("payment.failed", ago(days=2), "chargebee", subscriber=bo,
            payment={"amount": money(1000), "subscription_id": "cb_sub", "attempt": 2}))
    assert derived(hub, "payment.recovered") == []
    feed(hub, ev("payment.succeeded", ago(days=1), "chargebee", subscriber=bo,
                 payment={"amount": money(1000), "subscription_id": "cb_sub"}))
    (recovered,) = derived(hub, "payment.recovered")
    assert recovered.data["subscription"] == {"id": "cb_sub"} and recovered.data["dunning"]["failures"] == 2
    # an ordinary renewal payment afterwards is not a recovery
    feed(hub, ev("payment.succeeded", ago(hours=1), "chargebee", subscriber=bo,
                 payment={"amount": money(1000), "subscription_id": "cb_sub"}))
    assert len(derived(hub, "payment.recovered")) == 1


def test_mid_cycle_change_without_provider_proration_is_prorated_by_daily_rate(hub):
    cy = who("shopify", "88", "cy@x.com")
    period = {"current_period_start": "2026-04-01T00:00:00Z", "current_period_end": "2026-05-01T00:00:00Z"}
    feed(hub, ev("subscription.created", "2026-04-01T00:00:00Z", "shopify", subscriber=cy,
                 subscription=sub("c1", "active", 3000, **period)))
    change = ev("subscription.changed", "2026-04-21T00:00:00Z", "shopify", subscriber=cy,
                subscription=sub("c1", "active", 6000, **period))
    feed(hub, change)
    with hub.store.session() as s:
        stored = s.get(Event, change.id).data["proration"]
    # 30-day period, 10 days left: (6000 - 3000) / 30 x 10 = 1000
    assert stored["amount"] == money(1000) and stored["days_in_period"] == 30 and stored["days_used"] == 10
    assert stored["tags"] == ["mid-cycle change"] and stored["method"] == "daily-rate"
    # a provider's own proration is left alone
    given = ev("subscription.changed", "2026-04-25T00:00:00Z", "shopify", subscriber=cy,
               subscription=sub("c1", "active", 9000, **period), proration={"amount": money(777)})
    feed(hub, given)
    with hub.store.session() as s:
        assert s.get(Event, given.id).data["proration"] == {"amount": money(777)}


def test_the_sweep_catches_time_based_transitions(hub):
    dee = who("stripe", "cus_D", "dee@x.com")
    feed(hub, ev("subscription.created", ago(days=60), subscriber=dee, subscription=sub("sub_D", "active", 1000)),
         ev("message.clicked", ago(hours=2), "klaviyo", subscriber={"email": "dee@x.com"}),
         ev("message.clicked", ago(hours=1), "klaviyo", subscriber={"email": "dee@x.com"}))
    (person,) = rows(hub, Subscriber)
    assert person.segments == ["engaged", "engaged-sync"]
    assert recompute_all(hub)["changed"] == 0  # nothing moved since the event
    # three weeks later, with no new activity, the clicks (2 x 3) have decayed to 6 x 0.5^1.5 = 2.1 < 3
    counts = recompute_all(hub, now=utcnow() + timedelta(days=21))
    assert counts["changed"] == 1 and counts["exited"] == 2 and counts["entered"] == 1
    assert members(hub, "engaged") == set() and members(hub, "subscribers") == {person.id}
    exits = [e for e in derived(hub, "segment.exited") if e.provider_event_id.startswith("sweep:")]
    assert sorted(e.data["segment"]["id"] for e in exits) == ["engaged", "engaged-sync"]
    assert {e.subscriber_id for e in exits} == {person.id}


def test_scheduler_sweeps_once_per_interval_across_schedulers(make_hub, tmp_path, monkeypatch):
    import hub.segments.sweep as segments

    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path), HUB_SEGMENT_SWEEP_SECONDS=3600)
    monkeypatch.setattr(segments, "_last_sweep", None)
    assert segments.sweep_if_due(hub) is not None
    assert segments.sweep_if_due(hub) is None  # within the interval
    monkeypatch.setattr(segments, "_last_sweep", None)  # as if another scheduler process
    assert segments.sweep_if_due(hub) is None  # the shared Redis lock says this interval is taken
