"""hub backfill hubspot: each contact's e-mail, time zone and e-mail opt-out, read from the CRM
search API served on 127.0.0.1, recorded as the webhooks of the same changes would be."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest
import responses

import connectors
from connectors.hubspot import backfill as hs_backfill
from connectors.hubspot.client import HubSpotClient
from hub import backfill
from hub.runtime import Hub
from hub.store import Subscriber, utcnow
from tests.helpers import rows
from tests.mockapi import MockApi, Reply, Seen

JSON = {"Content-Type": "application/json"}


def contact(cid: str, email: str, days: float, **props: str) -> dict[str, Any]:
    modified = (utcnow() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"id": cid, "properties": {"email": email, "lastmodifieddate": modified, "hs_object_id": cid, **props},
            "createdAt": modified, "updatedAt": modified, "archived": False}


class FakeHubSpotSearch:
    """``POST /crm/v3/objects/contacts/search``: the lastmodifieddate window, ascending, ``after`` paging."""

    def __init__(self) -> None:
        self.contacts: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.api = MockApi(self.script)

    def script(self, seen: Seen, n: int) -> Reply:
        if seen.method != "POST" or seen.path != "/crm/v3/objects/contacts/search":
            return 404, JSON, b'{"status":"error"}', 0.0
        body = seen.json()
        self.bodies.append(body)
        filters = {f["operator"]: int(f["value"]) for f in body["filterGroups"][0]["filters"]}

        def ms(c: dict[str, Any]) -> int:
            return int(datetime.fromisoformat(c["properties"]["lastmodifieddate"].replace("Z", "+00:00"))
                       .timestamp() * 1000)
        chosen = sorted((c for c in self.contacts if filters["GTE"] <= ms(c) < filters["LT"]), key=ms)
        start = int(body.get("after") or 0)
        page = chosen[start:start + body["limit"]]
        answer: dict[str, Any] = {"total": len(chosen), "results": page}
        if start + body["limit"] < len(chosen):
            answer["paging"] = {"next": {"after": str(start + body["limit"]), "link": "?after=..."}}
        return 200, JSON, json.dumps(answer).encode(), 0.0


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpotSearch]:
    fake = FakeHubSpotSearch()
    yield fake
    fake.api.close()


@pytest.fixture
def hs_hub(make_hub: Callable[..., Hub], hubspot: FakeHubSpotSearch, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setattr(hs_backfill, "PAGE_SIZE", 2)
    return make_hub(HUB_HUBSPOT_ACCESS_TOKEN="pat-test", HUB_HUBSPOT_API_URL=hubspot.api.url)


def test_time_zone_and_opt_out_are_read_page_by_page_and_recorded_on_the_profiles_once(
        hs_hub: Hub, hubspot: FakeHubSpotSearch) -> None:
    hubspot.contacts += [contact("101", "Ann@Example.com", 40, hs_timezone="america_slash_new_york",
                                 hs_email_optout="true"),
                         contact("102", "bob@example.com", 30, hs_email_optout="false"),
                         contact("103", "cy@example.com", 20)]  # nothing but an e-mail: nothing to tell
    hubspot_connector = connectors.get("hubspot")
    counts = backfill.Run(hs_hub, hubspot_connector).start(utcnow() - timedelta(days=90))
    assert counts.fetched == counts.recorded == 2 and counts.events == 5 and counts.failed == 0
    people = {s.email: s for s in rows(hs_hub, Subscriber)}
    assert set(people) == {"ann@example.com", "bob@example.com"}
    assert people["ann@example.com"].timezone == "America/New_York"
    assert people["ann@example.com"].consent["email"] == "unsubscribed"
    assert people["bob@example.com"].consent["email"] == "subscribed"
    first, second = hubspot.bodies
    assert first["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert [f["propertyName"] for f in first["filterGroups"][0]["filters"]] == ["lastmodifieddate"] * 2
    assert {"email", "hs_timezone", "hs_email_optout"} <= set(first["properties"]) and first["limit"] == 2
    assert "after" not in first and second["after"] == "2"
    again = backfill.Run(hs_hub, hubspot_connector).start(utcnow() - timedelta(days=90))
    assert again.recorded == 0 and again.present == 2


@responses.activate
def test_past_the_search_cap_the_window_starts_again_at_the_last_contact() -> None:
    client = HubSpotClient("https://api.hubapi.test", {"Authorization": "Bearer pat-x"})
    last = contact("9", "z@example.com", 1, hs_timezone="europe_slash_paris")
    responses.post("https://api.hubapi.test/crm/v3/objects/contacts/search",
                   json={"results": [last], "paging": {"next": {"after": "9950"}}})
    start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), utcnow()
    page = hs_backfill.fetch_contacts(client, start, end, {"from": 1_767_225_600_000, "after": "9900"})
    assert page.next == {"from": int(page.reached.timestamp() * 1000), "after": None}  # type: ignore[union-attr]
    body = json.loads(responses.calls[0].request.body)
    assert body["after"] == "9900" and body["filterGroups"][0]["filters"][0]["value"] == "1767225600000"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer pat-x"
