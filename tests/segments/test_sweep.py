"""The full recompute (the sweep: bulk load, batched evaluation, set-based writes on a background
thread) gives exactly what the per-event path gives for the same subscribers: the same memberships,
segment lists, tiers, points, totals and lifecycle stages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from hub import runtime
from hub.config import load_settings
from hub.kernel.values import rfc3339
from hub.runtime import Hub
from hub.segments import engine
from hub.segments.sweep import recompute_all
from hub.store import Event, Subscriber, utcnow
from hub.store.migrate import upgrade
from hub.store.subscriber_models import ProfileStats, SegmentMembership
from tests.subscribers.support import ev, feed, money, rules_dir, sub, who


def ago(**delta: float) -> str:
    return rfc3339(utcnow() - timedelta(**delta))


def populate(hub: Hub) -> None:
    """A dozen subscribers through the pipeline, one or more in every segment of support.SEGMENTS_YAML."""
    in_a_month = rfc3339(utcnow() + timedelta(days=30))
    feed(hub, ev("subscription.created", ago(days=40), subscriber=who("stripe", "cus_a", "a@x.com"),
                 subscription=sub("s_a", "active", 2900)))
    feed(hub, ev("subscription.created", ago(days=40), subscriber=who("stripe", "cus_b", "b@x.com"),
                 subscription=sub("s_b", "active", 12000)))  # vip
    feed(hub, ev("subscription.created", ago(days=40), "chargebee", subscriber=who("chargebee", "cb_c", "c@x.com"),
                 subscription=sub("s_c", "active", 1000)),
         ev("subscription.changed", ago(days=2), "chargebee", subscriber=who("chargebee", "cb_c", "c@x.com"),
            subscription=sub("s_c", "past_due", 1000)))
    feed(hub, ev("subscription.cancellation_scheduled", ago(days=1), subscriber=who("stripe", "cus_d", "d@x.com"),
                 subscription=sub("s_d", "active", 15000, cancel_at=in_a_month)))
    feed(hub, ev("subscription.created", ago(days=90), "shopify", subscriber=who("shopify", "5", "e@x.com"),
                 subscription=sub("s_e", "active", 4000)),
         ev("order.paid", ago(days=60), "shopify", subscriber=who("shopify", "5", "e@x.com"),
            order={"total": money(150000)}))  # 1,500 points: gold -> loyal
    feed(hub, ev("subscription.created", ago(days=10), subscriber=who("stripe", "cus_f", "f@x.com"),
                 subscription=sub("s_f", "active", 2000)),
         ev("message.clicked", ago(hours=5), "klaviyo", subscriber={"email": "f@x.com"}),
         ev("message.clicked", ago(hours=4), "klaviyo", subscriber={"email": "f@x.com"}))  # engaged
    feed(hub, ev("order.paid", ago(days=100), "shopify", subscriber=who("shopify", "7", "g@x.com"),
                 order={"total": money(30000)}),
         ev("subscription.cancelled", ago(days=5), subscriber=who("stripe", "cus_g", "g@x.com"),
            subscription=sub("s_g", "cancelled", 0)))  # silver, in no segment
    feed(hub, ev("subscription.created", ago(days=3), subscriber=who("stripe", "cus_h", "h@x.com"),
                 subscription=sub("s_h", "trialing", 0)))
    feed(hub, ev("subscription.paused", ago(days=3), "chargebee", subscriber=who("chargebee", "cb_i", "i@x.com"),
                 subscription=sub("s_i", "paused", 0)))
    feed(hub, ev("subscription.created", ago(days=20), subscriber=who("stripe", "cus_j", "j@x.com"),
                 subscription=sub("s_j", "active", 11000, currency="EUR")),
         ev("order.paid", ago(days=15), "shopify", subscriber=who("shopify", "9", "j@x.com"),
            order={"total": money(20000)}))  # two currencies
    # two records, then an event naming both: merged, the younger one no longer evaluated
    feed(hub, ev("subscription.created", ago(days=30), subscriber=who("stripe", "cus_k", "k@x.com"),
                 subscription=sub("s_k", "active", 3000)))
    feed(hub, ev("subscription.created", ago(days=20), "chargebee", subscriber=who("chargebee", "cb_k", "k2@x.com"),
                 subscription=sub("s_k2", "active", 9000)))
    feed(hub, ev("subscriber.updated", ago(days=1), subscriber={"email": "k@x.com",
                                                                "external_ids": {"stripe": "cus_k", "chargebee": "cb_k"}}))
    feed(hub, ev("subscriber.created", ago(days=1), subscriber=who("stripe", "cus_m", "m@x.com")))


def snapshot(hub: Hub) -> dict[str, Any]:
    with hub.store.session() as s:
        live = list(s.execute(select(Subscriber).where(Subscriber.merged_into_id.is_(None))).scalars())
        stages = dict(s.execute(select(ProfileStats.subscriber_id, ProfileStats.lifecycle)).all())
        return {  # records merged away are evaluated by neither path: their last stage stays as it was
            "memberships": set(s.execute(select(SegmentMembership.subscriber_id, SegmentMembership.segment)).all()),
            "profiles": {p.id: (p.segments, p.tier, p.points, p.total_paid_minor, p.mrr_minor) for p in live},
            "stages": {p.id: stages.get(p.id) for p in live},
        }


def forget_segments(hub: Hub) -> None:
    """Back to before any evaluation: no memberships, no segments, tiers, points or totals."""
    with hub.store.session() as s:
        s.execute(delete(SegmentMembership))
        s.execute(update(Subscriber).values(segments=[], tier=None, points=0, total_paid_minor=0, mrr_minor=0))
        s.execute(update(ProfileStats).values(lifecycle=None))


def check_sweep_equals_events(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(hub)
    per_event = snapshot(hub)
    assert {seg for _, seg in per_event["memberships"]} == {
        "subscribers", "vip", "at-risk", "loyal", "engaged", "engaged-sync"}
    assert len(per_event["profiles"]) == 12 and {p[1] for p in per_event["profiles"].values()} == {
        "bronze", "silver", "gold"}

    forget_segments(hub)
    monkeypatch.setattr(engine, "BATCH", 4)  # several batches, so several rounds of background writes
    counts = recompute_all(hub)

    assert snapshot(hub) == per_event
    assert counts["subscribers"] == 12 and counts["entered"] == len(per_event["memberships"])
    assert counts["actions"] == 0  # the tools already hold these values: the per-event path synced them
    with hub.store.session() as s:
        entered = s.execute(select(Event.subscriber_id, Event.data).where(
            Event.type == "segment.entered", Event.provider_event_id.like("sweep:%"))).all()
    assert {(sid, data["segment"]["id"]) for sid, data in entered} == per_event["memberships"]


def test_full_recompute_equals_the_per_event_path_on_postgresql(make_hub, tmp_path, monkeypatch):
    check_sweep_equals_events(make_hub(HUB_RULES_PATH=rules_dir(tmp_path)), monkeypatch)


def test_full_recompute_equals_the_per_event_path_on_sqlite(tmp_path: Path, monkeypatch):
    hub = Hub(load_settings(environ={"HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
                                     "HUB_RULES_PATH": rules_dir(tmp_path), "HUB_LOG_LEVEL": "WARNING"}))
    upgrade(hub.store)
    runtime.use(hub)
    try:
        check_sweep_equals_events(hub, monkeypatch)
    finally:
        runtime.use(None)
        hub.close()
