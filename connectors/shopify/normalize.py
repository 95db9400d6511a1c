"""Shopify webhook -> canonical events, driven by mappings/shopify.yaml.

Code here handles only what the table cannot say: folding the two header flavours together, the
provider event id (X-Shopify-Event-Id, so two deliveries of one event give the same canonical
events), the consent embedded in customer payloads, and order line items.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.kernel.mapping import MappingTable, Source
from hub.kernel.values import from_iso, money_from_decimal, rfc3339

#: the unprefixed header names of Shopify's "Events" delivery, and the X-Shopify-* name each stands for
_UNPREFIXED = ("topic", "webhook-id", "event-id", "triggered-at", "shop-domain", "api-version", "sub-topic",
               "name")
#: customer payloads carry the current consent per channel; each becomes its own event (see the table)
_EMBEDDED_CONSENT = {"email": "customer.email_marketing_consent", "sms": "customer.sms_marketing_consent"}
_CUSTOMER_TOPICS = ("customers/create", "customers/update")


def headers_of(delivery: RawDelivery) -> dict[str, str]:
    """Request headers with the unprefixed flavour folded into X-Shopify-* names, plus the receipt time."""
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    for name in _UNPREFIXED:
        if f"shopify-{name}" in headers and not headers.get(f"x-shopify-{name}"):
            headers[f"x-shopify-{name}"] = headers[f"shopify-{name}"]
    headers["x-hub-received-at"] = rfc3339(delivery.received_at)
    return headers


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    payload = delivery.json()
    if not isinstance(payload, dict):
        raise PayloadError("Shopify webhook body is not a JSON object")
    headers = headers_of(delivery)
    topic = headers.get("x-shopify-topic")
    src = Source(payload, headers)
    fallback = "sha256:" + hashlib.sha256((topic or "").encode() + b"\n" + delivery.body).hexdigest()[:32]
    consent_id = _consent_topic_id(topic, payload)
    if consent_id:  # a consent topic names the same change as the customer payloads do: one id for both
        table = replace(table, event_id={"$const": consent_id})
    events = table.normalize(src, fallback_id=fallback)
    if topic in _CUSTOMER_TOPICS:
        events += _embedded_consent(payload, src, table)
    for event in events:
        order = event.data.get("order")
        if order is not None:
            order["items"] = _line_items(payload)
    return events


def consent_id(customer_id: Any, channel: str, consent: Any) -> str | None:
    """``customer/<id>/<channel>-consent/<state>/<consent_updated_at as UTC>``, when the consent says
    when it changed: every later customer payload repeats the same consent, and the consent topics
    report that same change again, so all of them must give one canonical event."""
    if customer_id in (None, "") or not isinstance(consent, dict):
        return None
    state, changed = consent.get("state"), consent.get("consent_updated_at")
    if not isinstance(state, str) or not state or not isinstance(changed, str) or not changed:
        return None
    try:
        changed = from_iso(changed) or changed
    except ValueError:
        pass  # unreadable: kept as sent (the event time will refuse it as a PayloadError)
    return f"customer/{customer_id}/{channel}-consent/{state.lower()}/{changed}"


def _consent_topic_id(topic: str | None, payload: dict[str, Any]) -> str | None:
    if topic == "customers_email_marketing_consent/update":
        return consent_id(payload.get("customer_id"), "email", payload.get("email_marketing_consent"))
    if topic == "customers_marketing_consent/update":
        return consent_id(payload.get("id"), "sms", payload.get("sms_marketing_consent"))
    return None


def _embedded_consent(payload: dict[str, Any], src: Source, table: MappingTable) -> list[CanonicalEvent]:
    """One consent event per channel whose consent says when it changed (see ``consent_id``)."""
    events: list[CanonicalEvent] = []
    for channel, row in _EMBEDDED_CONSENT.items():
        event_id = consent_id(payload.get("id"), channel, payload.get(f"{channel}_marketing_consent"))
        if event_id is None or row not in table.events:
            continue
        pseudo = replace(table, event_type={"$const": row}, event_id={"$const": event_id})
        for event in pseudo.normalize(src, fallback_id=event_id):
            event.providertype = str(src.headers.get("x-shopify-topic"))
            events.append(event)
    return events


def _line_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    currency = payload.get("currency")
    items = []
    for item in payload.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        try:
            price = money_from_decimal(item.get("price"), currency)
        except ValueError as exc:
            raise PayloadError(f"line item price: {exc}") from exc
        entry = {
            "id": _str(item.get("id")), "product_id": _str(item.get("product_id")),
            "variant_id": _str(item.get("variant_id")), "sku": item.get("sku"), "title": item.get("title"),
            "quantity": item.get("quantity"), "price": price,
        }
        items.append({k: v for k, v in entry.items() if v not in (None, "")})
    return items


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
