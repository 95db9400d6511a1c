"""Klaviyo state that matters to the hub, for ``hub backfill klaviyo``: each profile's marketing
consent per channel (connectors/sync.py says how records are recorded).

``GET /api/profiles`` with ``additional-fields[profile]=subscriptions`` (consent is left out
otherwise), ``page[size]`` at most 100, ``filter=and(greater-than(updated,…),less-than(updated,…))``,
and the next page at ``links.next`` (a cursor URL). Each profile's ``subscriptions.email.marketing``
and ``subscriptions.sms.marketing`` consent becomes the system event Klaviyo's webhook sends for it
(``subscribed_to_email_marketing``, ``unsubscribed_from_sms_marketing``...), keyed on the profile,
channel, state and consent time, so a second run, or a consent the webhook already told, adds
nothing new to the profile. Get Profiles is rate tier M: 10/s burst, 150/min steady.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from connectors.http import ApiClient
from connectors.sync import Page, Phase, Record, Source
from hub.kernel.values import parse_time, rfc3339

PAGE_SIZE = 100
#: Klaviyo consent -> the state word of the system event topic; NEVER_SUBSCRIBED tells nothing
_STATES = {"SUBSCRIBED": "subscribed_to", "UNSUBSCRIBED": "unsubscribed_from"}


def fetch_profiles(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
    if cursor:
        data = client.request("GET", cursor, whole=True).data or {}  # links.next carries every parameter
    else:
        lo, hi = (start - timedelta(seconds=1)).replace(microsecond=0), end.replace(microsecond=0)
        window = f"and(greater-than(updated,{rfc3339(lo)}),less-than(updated,{rfc3339(hi)}))"
        data = client.request("GET", "/api/profiles", params={
            "additional-fields[profile]": "subscriptions", "page[size]": PAGE_SIZE, "filter": window,
            "sort": "updated"}, whole=True).data or {}
    profiles = [p for p in data.get("data") or [] if isinstance(p, dict) and p.get("id")]
    records = [r for p in profiles for r in consent_records(p)]
    last = (profiles[-1].get("attributes") or {}).get("updated") if profiles else None
    return Page(records, (data.get("links") or {}).get("next"), parse_time(last) if last else None)


def consent_records(profile: dict[str, Any]) -> Iterable[Record]:
    attrs = profile.get("attributes") or {}
    for channel in ("email", "sms"):
        marketing = (((attrs.get("subscriptions") or {}).get(channel) or {}).get("marketing") or {})
        state = _STATES.get(str(marketing.get("consent") or "").upper())
        if not state:
            continue
        at = marketing.get("consent_timestamp") or attrs.get("updated") or attrs.get("created")
        if not at:
            continue
        topic = f"event:klaviyo.{state}_{channel}_marketing"
        key = f"bf:{topic}:{profile['id']}:{at}"
        event = {"type": "event", "id": key,
                 "attributes": {"datetime": at, "event_properties": {"Method": marketing.get("method")}},
                 "relationships": {"profile": {"data": {"type": "profile", "id": profile["id"]}}}}
        body = {"data": [{"external_id": key, "topic": topic,
                          "payload": {"data": event, "included": [{"type": "profile", "id": profile["id"],
                                                                   "attributes": attrs}]}}]}
        yield Record(key, body, parse_time(at))


SOURCE = Source(
    phases=(Phase("profiles", fetch_profiles),),
    events_reach=None,  # no event log the hub reads: the profiles' current consent is the history
    page_size=PAGE_SIZE,
    bucket="profiles-read",
    read_limit=((10, 1.0), (150, 60.0)),
)
