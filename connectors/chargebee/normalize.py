"""Chargebee Event -> canonical events, driven by mappings/chargebee.yaml.

Code here handles only what the table cannot say:

- the plan among ``subscription_items`` (Product Catalog 2.0 lists addons and charges beside it):
  it is moved first so the table's ``subscription_items.0`` is the plan;
- MRR over plan and addon items (one-off charges count zero), each at its own billing period;
- ``cancelled_at`` is the *scheduled* end while a subscription is ``non_renewing``: it becomes
  ``cancel_at`` there;
- ``subscription_started`` (a future-dated subscription began) is an activation only when it
  starts paid; starting into a trial is a plain ``subscription.updated``.
"""

from __future__ import annotations

import copy
from typing import Any

from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.mapping import MappingTable, Source
from hub.kernel.values import money, monthly

_RECURRING_ITEM_TYPES = ("plan", "addon")


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    payload = delivery.json()
    if not isinstance(payload, dict) or payload.get("object") not in (None, "event"):
        raise PayloadError("not a Chargebee event object")
    if not isinstance(payload.get("content"), dict):
        raise PayloadError("Chargebee event without a content object")
    try:
        payload = _plan_first(payload)
        events = table.normalize(Source(payload, delivery.headers), fallback_id=f"delivery-{delivery.id}")
        return [_complete(event, payload) for event in events]
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        # a verified payload with fields of unexpected types: stored, marked failed, replayable
        raise PayloadError(f"chargebee {payload.get('event_type')}: unexpected field value ({exc})") from exc


def _plan_first(payload: dict[str, Any]) -> dict[str, Any]:
    sub = payload["content"].get("subscription")
    items = sub.get("subscription_items") if isinstance(sub, dict) else None
    if not isinstance(items, list) or not items:
        return payload
    ordered = sorted(items, key=lambda i: 0 if isinstance(i, dict) and i.get("item_type") == "plan" else 1)
    if ordered == items:
        return payload
    payload = copy.copy(payload)
    payload["content"] = {**payload["content"], "subscription": {**sub, "subscription_items": ordered}}
    return payload


def _complete(event: CanonicalEvent, payload: dict[str, Any]) -> CanonicalEvent:
    if event.type == EventType.PROVIDER_UNMAPPED:
        return event
    raw_sub = payload["content"].get("subscription")
    subscription = event.data.get("subscription")
    if subscription and "status" in subscription and isinstance(raw_sub, dict):
        subscription["mrr"] = subscription_mrr(raw_sub)
        if raw_sub.get("status") == "non_renewing":
            subscription["cancel_at_period_end"] = True
            if "cancelled_at" in subscription:
                subscription["cancel_at"] = subscription.pop("cancelled_at")
    if event.providertype == "subscription_started" and isinstance(raw_sub, dict) \
            and raw_sub.get("status") != "active":
        event.type = EventType.SUBSCRIPTION_UPDATED
    elif event.providertype == "subscription_started":
        # the same moment as subscription_activated would be: one activation per subscription
        event.providereventid = str(raw_sub["id"]) if isinstance(raw_sub, dict) else event.providereventid
    # the type or provider id may have changed after construction: recompute the deterministic id
    return CanonicalEvent(**{**event.__dict__, "id": ""})


def subscription_mrr(sub: dict[str, Any]) -> dict[str, Any] | None:
    """Plan and addon amounts normalized to a month; cancelled subscriptions have none.

    Product Catalog 2.0 items carry their own period; 1.0 subscriptions carry ``plan_unit_price``
    x ``plan_quantity`` (or ``plan_amount``) and ``addons[]`` at the subscription's period.
    """
    currency = sub.get("currency_code")
    if not currency:
        return None
    period_unit, period = sub.get("billing_period_unit"), sub.get("billing_period")
    total = 0
    items = sub.get("subscription_items")
    if isinstance(items, list) and items:
        for item in items:
            if item.get("item_type") not in _RECURRING_ITEM_TYPES:
                continue
            total += monthly(_amount(item, "unit_price", "quantity"), item.get("billing_period_unit") or period_unit,
                             item.get("billing_period") or period)
    else:
        base = sub.get("plan_amount")
        if base is None and sub.get("plan_unit_price") is not None:
            base = int(sub["plan_unit_price"]) * int(sub.get("plan_quantity") or 1)
        total += monthly(int(base or 0), period_unit, period)
        for addon in sub.get("addons") or []:
            total += monthly(_amount(addon, "unit_price", "quantity"), period_unit, period)
    if sub.get("status") in ("cancelled", "transferred"):
        total = 0
    return money(total, currency)


def _amount(item: dict[str, Any], unit_key: str, quantity_key: str) -> int:
    if item.get("amount") is not None:
        return int(item["amount"])
    return int(item.get(unit_key) or 0) * int(item.get(quantity_key) or 1)
