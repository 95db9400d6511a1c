"""ActiveCampaign state that matters to the hub, for ``hub backfill activecampaign``: each contact's
status on each list, as the ``subscribe`` / ``unsubscribe`` webhook of it (connectors/sync.py says
how records are recorded).

``GET /api/3/contacts?include=contactLists`` with ``filters[updated_after]`` /
``filters[updated_before]``, ``orders[udate]=ASC``, ``limit`` at most 100 and ``offset`` paging
(ActiveCampaign "Pagination, Ordering, and Filtering"); the side-loaded ``contactLists`` carry each
membership's ``list``, ``status`` (1 active, 2 unsubscribed), ``sdate`` (subscribed) and ``udate``
(unsubscribed). Each membership becomes the form-encoded webhook ActiveCampaign sends for it, dated
with that time, and is stored under the key the webhook is deduplicated on (type, contact, list,
time: connectors/activecampaign/normalize.py), so a webhook of the same change is the same
delivery. One limit for the whole account: 5 requests/s (the connector's ``default`` bucket).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable
from urllib.parse import urlencode

from connectors.activecampaign.client import API
from connectors.activecampaign.normalize import event_key, parse_date_time
from connectors.http import ApiClient
from connectors.sync import Page, Phase, Record, Source
from hub.kernel.values import parse_time

PAGE_SIZE = 100
#: contactList.status -> the webhook type, and which of its dates tells when
_STATUS = {"1": ("subscribe", "sdate"), "2": ("unsubscribe", "udate")}


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def fetch_contacts(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
    offset = int(cursor or 0)
    data = client.request("GET", f"{API}/contacts", params={
        "include": "contactLists", "filters[updated_after]": _when(start), "filters[updated_before]": _when(end),
        "orders[udate]": "ASC", "limit": PAGE_SIZE, "offset": offset}, whole=True).data or {}
    contacts = {str(c["id"]): c for c in data.get("contacts") or [] if isinstance(c, dict) and c.get("id")}
    memberships = [m for m in data.get("contactLists") or [] if isinstance(m, dict)]
    records = [r for m in memberships for r in membership_records(m, contacts.get(str(m.get("contact"))))]
    last = list(contacts.values())[-1].get("udate") if contacts else None
    more = offset + PAGE_SIZE < int((data.get("meta") or {}).get("total") or 0)
    return Page(records, offset + PAGE_SIZE if more and contacts else None,
                parse_time(parse_date_time(last)) if last and parse_date_time(last) else None)


def membership_records(membership: dict[str, Any], contact: dict[str, Any] | None) -> Iterable[Record]:
    kind = _STATUS.get(str(membership.get("status")))
    if kind is None or contact is None:
        return
    type_, date_field = kind
    when = membership.get(date_field)
    at = parse_date_time(when) if isinstance(when, str) else None
    if at is None:
        return
    form = {"type": type_, "date_time": when, "initiated_from": "backfill", "list": str(membership.get("list")),
            "contact[id]": str(contact["id"]), "contact[email]": contact.get("email") or "",
            "contact[first_name]": contact.get("firstName") or "", "contact[last_name]": contact.get("lastName") or "",
            "contact[phone]": contact.get("phone") or ""}
    if type_ == "unsubscribe" and membership.get("unsubreason"):
        form["unsubscribe[reason]"] = membership["unsubreason"]
    key = event_key({"type": type_, "date_time": when, "list": form["list"], "contact": {"id": form["contact[id]"]}})
    yield Record(key or f"bf:{type_}:{contact['id']}:{form['list']}", urlencode(form).encode(), parse_time(at))


SOURCE = Source(
    phases=(Phase("list memberships", fetch_contacts),),
    events_reach=None,  # no event log: the contacts' list memberships are the history
    page_size=PAGE_SIZE,
)
