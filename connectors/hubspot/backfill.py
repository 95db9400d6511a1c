"""HubSpot state that matters to the hub, for ``hub backfill hubspot``: each contact's e-mail, time
zone (``hs_timezone``) and e-mail opt-out (``hs_email_optout``), as the webhook of the same change
would tell it (connectors/sync.py says how records are recorded).

``POST /crm/v3/objects/contacts/search`` with a ``lastmodifieddate`` window (``GTE`` / ``LT``, epoch
milliseconds), sorted ascending, ``limit`` at most 100, the next page at ``paging.next.after``. A
search reads at most 10,000 results, so past that the window starts again at the last contact's
``lastmodifieddate`` (the contacts read twice at that boundary are found present). Search is rate
limited apart from the rest of the API: 5 requests a second per token (its own read bucket here).

Each contact becomes one delivery shaped like HubSpot's webhook batch: a ``contact.propertyChange``
element per property it has (``email`` first, so the contact's id is linked to the person before
the other changes apply), at the contact's ``lastmodifieddate``; keyed on the contact and that
time, so a second run over an unchanged contact adds nothing. HubSpot's webhooks carry an event id
a backfill cannot know, so a change told by both is applied twice with the same value (state is
unchanged by the second).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from connectors.http import ApiClient
from connectors.sync import Page, Phase, Record, Source
from hub.kernel.values import parse_time

PAGE_SIZE = 100
SEARCH_CAP = 10_000  # results one search can page through
PROPERTIES = ("email", "hs_timezone", "hs_email_optout")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def fetch_contacts(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
    since, after = (cursor or {}).get("from", _ms(start)), (cursor or {}).get("after")
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)},
            {"propertyName": "lastmodifieddate", "operator": "LT", "value": str(_ms(end))}]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": list(PROPERTIES) + ["lastmodifieddate"], "limit": PAGE_SIZE}
    if after:
        body["after"] = after
    data = client.request("POST", "/crm/v3/objects/contacts/search", json_body=body, whole=True).data or {}
    contacts = [c for c in data.get("results") or [] if isinstance(c, dict) and c.get("id")]
    records = [r for c in contacts for r in contact_records(c)]
    nxt = ((data.get("paging") or {}).get("next") or {}).get("after")
    reached = _modified(contacts[-1]) if contacts else None
    if nxt and int(nxt) + PAGE_SIZE > SEARCH_CAP and reached:  # the search's cap: start again from here
        return Page(records, {"from": _ms(reached), "after": None}, reached)
    return Page(records, {"from": since, "after": nxt} if nxt else None, reached)


def _modified(contact: dict[str, Any]) -> datetime | None:
    value = (contact.get("properties") or {}).get("lastmodifieddate") or contact.get("updatedAt")
    return parse_time(value) if value else None


def contact_records(contact: dict[str, Any]) -> Iterable[Record]:
    props = contact.get("properties") or {}
    at = _modified(contact)
    if at is None:
        return
    occurred = _ms(at)
    elements = [{"subscriptionType": "contact.propertyChange", "objectId": int(contact["id"]),
                 "propertyName": name, "propertyValue": props[name], "changeSource": "BACKFILL",
                 "portalId": "backfill", "subscriptionId": name, "eventId": contact["id"], "occurredAt": occurred,
                 "attemptNumber": 0}
                for name in PROPERTIES if props.get(name) not in (None, "")]
    if len(elements) > 1 or (elements and elements[0]["propertyName"] != "email"):
        yield Record(f"bf:contact:{contact['id']}:{occurred}", elements, at)  # type: ignore[arg-type]


SOURCE = Source(
    phases=(Phase("contacts", fetch_contacts),),
    events_reach=None,  # no event log: the contacts' current properties are the history
    page_size=PAGE_SIZE,
    bucket="search",
    read_limit=((5, 1.0),),
)
