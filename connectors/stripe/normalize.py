"""Stripe Event -> canonical events, driven by mappings/stripe.yaml.

Code here handles only what the table cannot say: MRR across items and intervals, and
refining ``customer.subscription.updated`` from ``previous_attributes``.
"""

from __future__ import annotations

from typing import Any

from hub.errors import PayloadError
from hub.events import CanonicalEvent, EventType
from hub.mapping import MappingTable, Source
from hub.values import money, monthly

from ..base import RawDelivery


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    payload = delivery.json()
    if not isinstance(payload, dict) or payload.get("object") not in (None, "event"):
        raise PayloadError("not a Stripe event object")
    if not isinstance(payload.get("data"), dict) or not isinstance(payload["data"].get("object"), dict):
        raise PayloadError("Stripe event without data.object")
    events = table.normalize(Source(payload, delivery.headers), fallback_id=f"delivery-{delivery.id}")
    obj = payload["data"]["object"]
    for event in events:
        subscription = event.data.get("subscription")
        if subscription and obj.get("object") == "subscription":
            subscription["mrr"] = subscription_mrr(obj)
        if event.providertype == "customer.subscription.updated":
            event.type = refine_update(obj, payload["data"].get("previous_attributes") or {})
    return [_with_id(e) for e in events]


def _with_id(event: CanonicalEvent) -> CanonicalEvent:
    # the type may have been refined after construction: recompute the deterministic id
    return CanonicalEvent(**{**event.__dict__, "id": ""})


def subscription_mrr(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Sum of item price x quantity, normalized to a month (metered items count zero)."""
    currency = obj.get("currency")
    items = (obj.get("items") or {}).get("data") or []
    total = 0
    for item in items:
        price = item.get("price") or item.get("plan") or {}
        recurring = price.get("recurring") or {"interval": price.get("interval"),
                                                "interval_count": price.get("interval_count")}
        if recurring.get("usage_type") == "metered" or price.get("unit_amount") is None:
            continue
        amount = int(price["unit_amount"]) * int(item.get("quantity") or 1)
        total += monthly(amount, recurring.get("interval"), recurring.get("interval_count"))
        currency = currency or price.get("currency")
    if obj.get("status") in ("canceled", "incomplete_expired"):
        total = 0
    return money(total, currency) if currency else None


def refine_update(obj: dict[str, Any], previous: dict[str, Any]) -> str:
    """Tell what a ``customer.subscription.updated`` means from the attributes that changed."""
    status = obj.get("status")
    old_status = previous.get("status")
    if "cancel_at_period_end" in previous or "cancel_at" in previous:
        if obj.get("cancel_at_period_end") or obj.get("cancel_at"):
            return EventType.SUBSCRIPTION_CANCELLATION_SCHEDULED
        return EventType.SUBSCRIPTION_REACTIVATED
    if old_status and old_status != status:
        if status == "active" and old_status == "trialing":
            return EventType.SUBSCRIPTION_ACTIVATED
        if status == "active" and old_status in ("paused",):
            return EventType.SUBSCRIPTION_RESUMED
        if status == "paused":
            return EventType.SUBSCRIPTION_PAUSED
        if status == "canceled":
            return EventType.SUBSCRIPTION_CANCELLED
    if "pause_collection" in previous:
        return EventType.SUBSCRIPTION_PAUSED if obj.get("pause_collection") else EventType.SUBSCRIPTION_RESUMED
    if "current_period_end" in previous or _item_period_changed(previous):
        items_only_moved_period = "items" not in previous or _item_period_changed(previous)
        if items_only_moved_period and not ({"plan", "quantity"} & previous.keys()):
            return EventType.SUBSCRIPTION_RENEWED
    return EventType.SUBSCRIPTION_CHANGED


def _item_period_changed(previous: dict[str, Any]) -> bool:
    items = (previous.get("items") or {}).get("data") or []
    return bool(items) and all(set(i) <= {"current_period_start", "current_period_end"} for i in items)
