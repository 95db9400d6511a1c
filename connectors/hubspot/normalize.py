"""HubSpot webhook batch -> canonical events, one per array element, driven by mappings/hubspot.yaml.

Code here handles only what the table cannot say: the composite provider event id, routing a
property change on its property name, per-subscription-type opt-out channels, the generic
``object.*`` format and HubSpot's time zone values.

The generic format (apps on the current platform; ``subscriptionType: "object.creation"`` and so on,
the object named by ``objectTypeId``) carries the same fields as the legacy one. A contact
(``0-1``) is read by the legacy ``contact.*`` rows, so both formats give the same canonical events;
any other object type is looked up as ``<objectTypeId>/<subscriptionType>`` (e.g.
``0-3/object.creation``) and, without such a row, stored as ``provider.unmapped``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import replace
from typing import Any, Iterable

from connectors.base import RawDelivery
from hub.kernel import timezones
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.kernel.mapping import MappingTable, Source

PROPERTY_CHANGE = ".propertyChange"
CONTACT_TYPE_ID = "0-1"
_GENERIC = "object."
_TYPE_OPTOUT_PREFIX = "hs_email_optout_"


def composite_id(element: dict[str, Any]) -> str:
    """``portalId:subscriptionId:eventId:occurredAt``: unique where ``eventId`` alone is not."""
    return ":".join(str(element.get(k, "")) for k in ("portalId", "subscriptionId", "eventId", "occurredAt"))


def delivery_key(elements: Iterable[Any]) -> str:
    """The dedup key of a whole batch: the composite ids of its events (hashed past one event).

    ``attemptNumber`` is left out on purpose: a retry of the same batch is the same delivery."""
    ids = sorted(composite_id(e) if isinstance(e, dict) else repr(e) for e in elements)
    if len(ids) == 1:
        return ids[0]
    return "batch:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()


def events_of(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict):  # tolerate a single event object
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
        raise PayloadError("HubSpot webhook body is not a JSON array of event objects")
    return payload


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    out: list[CanonicalEvent] = []
    for element in events_of(delivery.json()):
        out.extend(normalize_one(element, delivery.headers, table))
    return out


def normalize_one(element: dict[str, Any], headers: Any, table: MappingTable) -> list[CanonicalEvent]:
    provider_type = str(element.get("subscriptionType") or "unknown")
    route = route_of(element, table)
    event_id = composite_id(element)
    routed = replace(table, event_type={"$const": route}, event_id={"$const": event_id})
    events = routed.normalize(Source(element, headers), fallback_id=event_id)
    for event in events:
        event.providertype = provider_type
        merge = event.data.get("merge")
        if merge and isinstance(merge.get("merged_ids"), list):
            merge["merged_ids"] = [str(i) for i in merge["merged_ids"]]
        consent = event.data.get("consent")
        prop = str(element.get("propertyName") or "")
        if consent and prop.startswith(_TYPE_OPTOUT_PREFIX):
            consent["channel"] = f"email:{prop[len(_TYPE_OPTOUT_PREFIX):]}"
        subscriber = event.data.get("subscriber")
        if subscriber and "timezone" in subscriber:
            zone = iana_zone(subscriber.pop("timezone"))
            if zone:  # an unknown or cleared value leaves the stored zone alone
                subscriber["timezone"] = zone
    return events


def route_of(element: dict[str, Any], table: MappingTable) -> str:
    """The table row for an element: ``<type>/<property>`` (exact, then glob) for property changes.

    Generic-format contacts use the ``contact.*`` rows; other generic objects
    ``<objectTypeId>/object.<action>``."""
    provider_type = str(element.get("subscriptionType") or "unknown")
    if provider_type.startswith(_GENERIC):
        type_id = str(element.get("objectTypeId") or "")
        action = provider_type[len(_GENERIC):]
        provider_type = f"contact.{action}" if type_id == CONTACT_TYPE_ID else f"{type_id}/{provider_type}"
    if not provider_type.endswith(PROPERTY_CHANGE) or "/" in provider_type:
        return provider_type
    prop = str(element.get("propertyName") or "")
    exact = f"{provider_type}/{prop}"
    if exact in table.events:
        return exact
    for row in table.events:
        if "/" in row and "*" in row and fnmatch.fnmatchcase(exact, row):
            return row
    return provider_type


def iana_zone(value: Any) -> str | None:
    """An IANA zone name from HubSpot's ``hs_timezone`` value (``america_slash_new_york``), or None.

    HubSpot's option values spell the IANA name in lower case with ``/`` as ``_slash_`` and ``-``
    as ``_hyphen_``; a value that already is an IANA name is taken as it is."""
    if not isinstance(value, str):
        return None
    return timezones.iana(value.replace("_slash_", "/").replace("_hyphen_", "-"))
