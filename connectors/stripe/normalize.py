"""Stripe Event -> canonical events, driven by mappings/stripe.yaml.

Code here handles only what the table cannot say:

- MRR across items and intervals, on every subscription part;
- what a ``customer.subscription.updated`` means, from ``previous_attributes`` (activation,
  cancellation scheduled, reactivation, pause, plan change with its direction, renewal, or
  ``subscription.updated`` when nothing with a lifecycle meaning changed);
- collapse keys for moments Stripe announces twice (a status move to ``paused``/``canceled`` fires
  ``customer.subscription.updated`` and the dedicated event): both get the same provider event id,
  hence the same canonical id, and the events table keeps one;
- the amount of one refund on ``charge.refunded`` (the charge only carries the running total).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.mapping import MappingTable, Source, extract
from hub.kernel.values import money, monthly

#: subscription statuses Stripe announces with their own event besides customer.subscription.updated
_ANNOUNCED = {"paused": EventType.SUBSCRIPTION_PAUSED}


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    payload = delivery.json()
    if not isinstance(payload, dict) or payload.get("object") not in (None, "event"):
        raise PayloadError("not a Stripe event object")
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise PayloadError("Stripe event without data.object")
    previous = data.get("previous_attributes") or {}
    if not isinstance(previous, dict):
        raise PayloadError("Stripe data.previous_attributes is not an object")
    events = table.normalize(Source(payload, delivery.headers), fallback_id=f"delivery-{delivery.id}")
    try:
        return [_complete(event, payload, table) for event in events]
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        # a verified payload with fields of unexpected types: stored, marked failed, replayable
        raise PayloadError(f"stripe {payload.get('type')}: unexpected field value ({exc})") from exc


def _complete(event: CanonicalEvent, payload: dict[str, Any], table: MappingTable) -> CanonicalEvent:
    if event.type == EventType.PROVIDER_UNMAPPED:
        return event
    obj = payload["data"]["object"]
    previous = payload["data"].get("previous_attributes") or {}
    ptype = event.providertype
    subscription = event.data.get("subscription")
    if subscription is not None and ptype.startswith("customer.subscription."):
        subscription["mrr"] = subscription_mrr(obj)
    if ptype == "customer.subscription.updated":
        meaning = refine_update(payload, table)
        event.type = meaning.type
        if meaning.key:
            event.providereventid = meaning.key
        if meaning.previous:
            event.data["previous"] = meaning.previous
        if meaning.change:
            event.data["change"] = meaning.change
    elif ptype in ("customer.subscription.paused", "customer.subscription.resumed"):
        event.providereventid = transition_key(payload, ptype.rsplit(".", 1)[1])
    elif ptype == "charge.refunded":
        _refund_amount(event, obj, previous)
    # the type or provider id may have changed after construction: recompute the deterministic id
    return CanonicalEvent(**{**event.__dict__, "id": ""})


def transition_key(payload: dict[str, Any], moment: str) -> str:
    """One key for a status move Stripe announces twice: the same API request (or, for automatic
    moves such as a trial ending without a payment method, the same second) gives the same key."""
    obj = payload["data"]["object"]
    request = payload.get("request") if isinstance(payload.get("request"), dict) else {}
    return f"{obj.get('id')}:{moment}:{request.get('id') or payload.get('created')}"


def subscription_mrr(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Sum of item price x quantity, normalized to a month (metered items count zero).

    Discounts are not applied: this is list-price MRR. A cancelled subscription has none.
    """
    currency = obj.get("currency")
    items = (obj.get("items") or {}).get("data") or []
    if not items and isinstance(obj.get("plan"), dict):  # oldest shape: one plan on the subscription
        items = [{"plan": obj["plan"], "quantity": obj.get("quantity")}]
    total = 0
    for item in items:
        price = item.get("price") or item.get("plan") or {}
        recurring = price.get("recurring") or {"interval": price.get("interval"),
                                                "interval_count": price.get("interval_count"),
                                                "usage_type": price.get("usage_type")}
        unit = price.get("unit_amount", price.get("amount"))  # Price.unit_amount, legacy Plan.amount
        if recurring.get("usage_type") == "metered" or unit is None:
            continue
        quantity = item.get("quantity")
        amount = int(unit) * int(1 if quantity is None else quantity)
        total += monthly(amount, recurring.get("interval"), recurring.get("interval_count"))
        currency = currency or price.get("currency")
    if obj.get("status") in ("canceled", "incomplete_expired"):
        total = 0
    return money(total, currency) if currency else None


@dataclass
class Meaning:
    """What a customer.subscription.updated says."""

    type: str
    key: str | None = None  # a collapse key replacing the event id
    previous: dict[str, Any] = field(default_factory=dict)
    change: dict[str, Any] | None = None


def refine_update(payload: dict[str, Any], table: MappingTable) -> Meaning:
    """Tell what a ``customer.subscription.updated`` means from the attributes that changed."""
    obj = payload["data"]["object"]
    prev_attrs = payload["data"].get("previous_attributes") or {}
    old = previous_object(obj, prev_attrs)
    new_part = _subscription_part(payload, obj, table)
    old_part = _subscription_part(payload, old, table)
    previous = {k: v for k, v in old_part.items() if new_part.get(k) != v and k != "version"}

    def meaning(type_: str, key: str | None = None, change: dict[str, Any] | None = None) -> Meaning:
        return Meaning(type_, key, previous, change)

    status, old_status = obj.get("status"), old.get("status")
    if old_status != status:
        if status == "canceled":
            return meaning(EventType.SUBSCRIPTION_CANCELLED, str(obj.get("id")))  # as customer.subscription.deleted
        if status in _ANNOUNCED:
            return meaning(_ANNOUNCED[status], transition_key(payload, "paused"))
        if old_status == "paused" and status in ("active", "trialing"):
            return meaning(EventType.SUBSCRIPTION_RESUMED, transition_key(payload, "resumed"))
        if status == "active" and old_status in ("trialing", "incomplete"):
            return meaning(EventType.SUBSCRIPTION_ACTIVATED)
    if "cancel_at_period_end" in prev_attrs or "cancel_at" in prev_attrs:
        if obj.get("cancel_at_period_end") or obj.get("cancel_at"):
            return meaning(EventType.SUBSCRIPTION_CANCELLATION_SCHEDULED)
        return meaning(EventType.SUBSCRIPTION_REACTIVATED)
    if "pause_collection" in prev_attrs:  # collection paused, subscription still active: no own event
        return meaning(EventType.SUBSCRIPTION_PAUSED if obj.get("pause_collection") else EventType.SUBSCRIPTION_RESUMED)
    if _lineup(old) != _lineup(obj):
        return meaning(EventType.SUBSCRIPTION_CHANGED, change=_direction(old_part.get("mrr"), new_part.get("mrr")))
    if old_part.get("current_period_end") != new_part.get("current_period_end"):
        return meaning(EventType.SUBSCRIPTION_RENEWED)
    return meaning(EventType.SUBSCRIPTION_UPDATED)


def previous_object(obj: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The subscription as it was: current values overlaid with ``previous_attributes``.

    Stripe sends a changed array whole, but item entries are merged by position so that older
    API versions, which sent only the changed elements, work too.
    """
    old = {**obj, **previous}
    prev_items = previous.get("items")
    if isinstance(prev_items, dict) and isinstance(prev_items.get("data"), list):
        new_items = (obj.get("items") or {}).get("data") or []
        merged = []
        for i, item in enumerate(prev_items["data"]):
            base = new_items[i] if i < len(new_items) and isinstance(new_items[i], dict) else {}
            merged.append({**base, **item} if isinstance(item, dict) else base)
        old["items"] = {**(obj.get("items") or {}), **prev_items, "data": merged}
    return old


def _subscription_part(payload: dict[str, Any], obj: dict[str, Any], table: MappingTable) -> dict[str, Any]:
    src = Source({**payload, "data": {"object": obj}})
    part = extract(table.shared_parts["subscription"], src) or {}
    part["mrr"] = subscription_mrr(obj)
    return part


def _lineup(obj: dict[str, Any]) -> list[tuple[Any, Any]]:
    """What is being sold: (price or plan id, quantity) per item."""
    items = (obj.get("items") or {}).get("data") or []
    lineup = [((i.get("price") or i.get("plan") or {}).get("id"), i.get("quantity")) for i in items]
    if not lineup and isinstance(obj.get("plan"), dict):
        lineup = [(obj["plan"].get("id"), obj.get("quantity"))]
    return lineup


def _direction(old_mrr: dict[str, Any] | None, new_mrr: dict[str, Any] | None) -> dict[str, Any]:
    """``upgrade`` / ``downgrade`` / ``lateral`` by MRR, with the MRR delta."""
    if not old_mrr or not new_mrr or old_mrr["currency"] != new_mrr["currency"]:
        return {"direction": "lateral"}
    delta = new_mrr["minor"] - old_mrr["minor"]
    direction = "upgrade" if delta > 0 else "downgrade" if delta < 0 else "lateral"
    return {"direction": direction, "mrr_delta": money(delta, new_mrr["currency"])}


def _refund_amount(event: CanonicalEvent, obj: dict[str, Any], previous: dict[str, Any]) -> None:
    """``amount_refunded`` is the running total; this refund is the part added by this event."""
    payment = event.data.get("payment")
    if not payment or obj.get("amount_refunded") is None:
        return
    before = previous.get("amount_refunded")
    if before is not None:
        payment["amount"] = money(int(obj["amount_refunded"]) - int(before), obj.get("currency"))
