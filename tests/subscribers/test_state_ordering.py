"""Out-of-order and repeated updates: an older update never overwrites newer state, but it is
still recorded as an event. One sequence per provider shape."""

from __future__ import annotations

import pytest

from hub.store import Event, Subscription
from tests.helpers import count, rows
from tests.subscribers.support import ev, feed, rules_dir, sub, who


@pytest.fixture
def hub(make_hub, tmp_path):
    return make_hub(HUB_RULES_PATH=rules_dir(tmp_path))


def state_of(hub, sub_id: str) -> Subscription:
    (row,) = rows(hub, Subscription, Subscription.external_id == sub_id)
    return row


def test_stripe_by_event_created_time(hub):
    """Stripe: the subscription's ``created`` is the same on every event, so the event time decides."""
    created = "1767225600"
    cus = who("stripe", "cus_S", "s@x.com")
    active = ev("subscription.activated", "2026-02-01T00:00:00Z", subscriber=cus,
                subscription=sub("sub_S", "active", 2900, version=created))
    past_due = ev("subscription.changed", "2026-03-01T00:00:00Z", subscriber=cus,
                  subscription=sub("sub_S", "past_due", 2900, version=created))
    cancelled = ev("subscription.cancelled", "2026-04-01T00:00:00Z", subscriber=cus,
                   subscription=sub("sub_S", "cancelled", 0, version=created))
    feed(hub, cancelled)
    feed(hub, active, past_due)  # both older than the cancellation
    row = state_of(hub, "sub_S")
    assert row.status == "cancelled" and row.mrr_minor == 0
    assert count(hub, Event, Event.origin == "provider") == 3  # the late ones are still recorded
    feed(hub, ev("subscription.reactivated", "2026-05-01T00:00:00Z", subscriber=cus,
                 subscription=sub("sub_S", "active", 2900, version=created)))
    assert state_of(hub, "sub_S").status == "active"


def test_chargebee_resource_version_beats_equal_or_skewed_times(hub):
    """Chargebee: ``resource_version`` orders the resource's states, even when occurred_at ties
    or a retried delivery carries a misleading time."""
    cus = who("chargebee", "cb_C", "c@x.com")
    feed(hub, ev("subscription.changed", "2026-03-01T00:00:00Z", "chargebee", subscriber=cus,
                 subscription=sub("cb_sub", "active", 5000, version=1767225600300)))
    # same second, older version: ignored
    feed(hub, ev("subscription.changed", "2026-03-01T00:00:00Z", "chargebee", subscriber=cus,
                 subscription=sub("cb_sub", "active", 3000, version=1767225600200)))
    assert state_of(hub, "cb_sub").mrr_minor == 5000
    # same second, newer version: applied
    feed(hub, ev("subscription.changed", "2026-03-01T00:00:00Z", "chargebee", subscriber=cus,
                 subscription=sub("cb_sub", "active", 7000, version=1767225600400)))
    assert state_of(hub, "cb_sub").mrr_minor == 7000
    # a later clock but an older version (a stale retry): the version wins
    feed(hub, ev("subscription.paused", "2026-03-02T00:00:00Z", "chargebee", subscriber=cus,
                 subscription=sub("cb_sub", "paused", 0, version=1767225600100)))
    row = state_of(hub, "cb_sub")
    assert row.status == "active" and row.mrr_minor == 7000 and row.version == "1767225600400"
    assert count(hub, Event, Event.provider == "chargebee") == 4


def test_shopify_revision_id_and_triggered_at(hub):
    """Shopify contracts: ``revision_id`` (a digit string) orders updates; without one, the
    X-Shopify-Triggered-At time (the event time) does. Contract events may carry only the customer id."""
    cus = who("shopify", "7001", "sh@x.com")
    feed(hub, ev("subscription.created", "2026-01-10T10:00:00Z", "shopify", subscriber=cus,
                 subscription=sub("gid://shopify/SubscriptionContract/1", "active", 2000, version="11")))
    # a delivery retried a day late, older revision
    feed(hub, ev("subscription.paused", "2026-01-11T10:00:00Z", "shopify", subscriber=who("shopify", "7001"),
                 subscription=sub("gid://shopify/SubscriptionContract/1", "paused", 0, version="9")))
    assert state_of(hub, "gid://shopify/SubscriptionContract/1").status == "active"
    # revisions compare as numbers: "100" is newer than "11" (as text it would sort before it)
    feed(hub, ev("subscription.changed", "2026-01-12T10:00:00Z", "shopify", subscriber=who("shopify", "7001"),
                 subscription=sub("gid://shopify/SubscriptionContract/1", "active", 2500, version="100")))
    assert state_of(hub, "gid://shopify/SubscriptionContract/1").mrr_minor == 2500
    # no revision on either side: the triggered-at time decides
    feed(hub, ev("subscription.created", "2026-01-20T10:00:00Z", "shopify", subscriber=cus,
                 subscription=sub("gid://shopify/SubscriptionContract/2", "active", 1000)),
         ev("subscription.cancelled", "2026-01-19T10:00:00Z", "shopify", subscriber=cus,
            subscription=sub("gid://shopify/SubscriptionContract/2", "cancelled", 0)))
    assert state_of(hub, "gid://shopify/SubscriptionContract/2").status == "active"
    (only,) = {r.subscriber_id for r in rows(hub, Subscription)}
    assert only is not None


def test_older_consent_change_never_wins(hub):
    feed(hub, ev("subscriber.consent_changed", "2026-01-05T00:00:00Z", "klaviyo", subscriber={"email": "k@x.com"},
                 consent={"channel": "email", "state": "unsubscribed"}),
         ev("subscriber.consent_changed", "2026-01-01T00:00:00Z", "shopify", subscriber=who("shopify", "9", "k@x.com"),
            consent={"channel": "email", "state": "subscribed"}))
    from hub.store import Subscriber

    (person,) = rows(hub, Subscriber)
    assert person.consent == {"email": "unsubscribed"}
