"""Klaviyo webhook deliveries -> canonical events, driven by mappings/klaviyo.yaml.

A delivery batches up to 1000 events in ``data[]``; each element becomes its own canonical
event(s). Code here only builds the per-element view the table reads: the ``payload`` is "the Get
Event API response", so it may be the JSON:API document (``{"data": event, "included": [...]}``)
or the bare event resource; the profile's attributes come from ``included`` when Klaviyo sends them.
Flow webhooks (bodies the merchant designs) must use the same envelope; a flow body that is a
single ``{external_id, topic, payload}`` object is accepted as a batch of one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from connectors.base import RawDelivery
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.kernel.mapping import MappingTable, Source


def elements(payload: Any) -> list[dict[str, Any]]:
    """The ``data[]`` elements of a delivery (a lone element is a batch of one)."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        items = payload["data"]
    elif isinstance(payload, dict) and "topic" in payload:
        items = [payload]
    else:
        raise PayloadError('not a Klaviyo webhook: expected {"data": [{"external_id", "topic", "payload"}]}')
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict) or not item.get("topic")]
    if bad:
        raise PayloadError(f"Klaviyo data[{bad[0]}] has no topic")
    return items


def view(item: dict[str, Any], meta: Any) -> dict[str, Any]:
    """What mappings/klaviyo.yaml reads for one ``data[]`` element."""
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    event = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    attributes = event.get("attributes") if isinstance(event.get("attributes"), dict) else {}
    profile_ref = ((event.get("relationships") or {}).get("profile") or {}).get("data") or {}
    profile_id = profile_ref.get("id") if isinstance(profile_ref, dict) else None
    profile: dict[str, Any] = {}
    for included in payload.get("included") or []:
        if isinstance(included, dict) and included.get("type") == "profile" and (
                profile_id is None or included.get("id") == profile_id):
            profile = included.get("attributes") or {}
            profile_id = profile_id or included.get("id")
            break
    return {
        "external_id": item.get("external_id"),
        "topic": item.get("topic"),
        "event": event,
        "properties": attributes.get("event_properties") or {},
        "profile": profile,
        "profile_id": profile_id,
        "meta": meta if isinstance(meta, dict) else {},
    }


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    payload = delivery.json()
    meta = payload.get("meta") if isinstance(payload, dict) else None
    events: list[CanonicalEvent] = []
    for item in elements(payload):
        # an element without external_id (a hand-built flow body) gets a stable id from its content
        fallback = "sha256:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        for event in table.normalize(Source(view(item, meta), delivery.headers), fallback_id=fallback):
            if event.type == "provider.unmapped":
                event.data = {"raw": item}  # the element as Klaviyo sent it, not our view of it
            events.append(event)
    return events
