"""hub backfill activecampaign: each contact's list status, read from the contacts API (side-loaded
contactLists) served on 127.0.0.1, recorded as the subscribe / unsubscribe webhooks would be."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

import connectors
from connectors.activecampaign import backfill as ac_backfill
from hub import backfill
from hub.runtime import Hub
from hub.store import Delivery, Event, Subscriber, utcnow
from hub.web import create_app
from tests.helpers import count, drain, rows
from tests.mockapi import MockApi, Reply, Seen

JSON = {"Content-Type": "application/json"}
TOKEN = "ac-hook-token"


def ago(days: float) -> str:
    return (utcnow() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S-00:00")


class FakeActiveCampaign:
    """``GET /api/3/contacts?include=contactLists``: offset paging, contactLists side-loaded."""

    def __init__(self) -> None:
        self.contacts: list[dict[str, Any]] = []
        self.memberships: list[dict[str, Any]] = []
        self.asked: list[dict[str, list[str]]] = []
        self.api = MockApi(self.script)

    def script(self, seen: Seen, n: int) -> Reply:
        parts = urlsplit(seen.path)
        if seen.method != "GET" or parts.path != "/api/3/contacts" or not seen.headers.get("Api-Token"):
            return 404, JSON, b'{"message":"No Result found"}', 0.0
        q = parse_qs(parts.query)
        self.asked.append(q)
        offset, limit = int(q["offset"][0]), int(q["limit"][0])
        page = self.contacts[offset:offset + limit]
        ids = {c["id"] for c in page}
        body = {"contacts": page, "contactLists": [m for m in self.memberships if m["contact"] in ids],
                "meta": {"total": str(len(self.contacts))}}
        return 200, JSON, json.dumps(body).encode(), 0.0


@pytest.fixture
def activecampaign() -> Iterator[FakeActiveCampaign]:
    fake = FakeActiveCampaign()
    yield fake
    fake.api.close()


@pytest.fixture
def ac_hub(make_hub: Callable[..., Hub], activecampaign: FakeActiveCampaign, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setattr(ac_backfill, "PAGE_SIZE", 2)
    return make_hub(HUB_ACTIVECAMPAIGN_API_TOKEN="ac-api", HUB_ACTIVECAMPAIGN_API_URL=activecampaign.api.url,
                    HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN=TOKEN)


def seed(fake: FakeActiveCampaign) -> None:
    for n in (1, 2, 3):
        fake.contacts.append({"id": str(n), "email": f"ac{n}@example.com", "firstName": f"Ac{n}", "lastName": "X",
                              "phone": "", "udate": ago(10 - n)})
    fake.memberships += [
        {"contact": "1", "list": "3", "status": "1", "sdate": ago(60), "udate": None},
        {"contact": "2", "list": "3", "status": "2", "sdate": ago(50), "udate": ago(20), "unsubreason": "too many"},
        {"contact": "3", "list": "3", "status": "0", "sdate": None, "udate": None},  # unconfirmed: tells nothing
    ]


def test_list_status_is_recorded_as_the_webhooks_of_it_once(ac_hub: Hub, activecampaign: FakeActiveCampaign) -> None:
    seed(activecampaign)
    ac = connectors.get("activecampaign")
    counts = backfill.Run(ac_hub, ac).start(utcnow() - timedelta(days=90))
    assert counts.fetched == counts.recorded == 2 and counts.failed == 0
    consent = {s.email: s.consent for s in rows(ac_hub, Subscriber)}
    assert consent["ac1@example.com"]["email"] == "subscribed"
    assert consent["ac2@example.com"]["email"] == "unsubscribed"
    first, second = activecampaign.asked
    assert first["include"] == ["contactLists"] and first["orders[udate]"] == ["ASC"] and first["limit"] == ["2"]
    assert "filters[updated_after]" in first and "filters[updated_before]" in first
    assert first["offset"] == ["0"] and second["offset"] == ["2"]
    again = backfill.Run(ac_hub, ac).start(utcnow() - timedelta(days=90))
    assert again.recorded == 0 and again.present == 2
    # ActiveCampaign's own webhook of the unsubscribe (never retried, so maybe lost) is the same delivery
    deliveries, events = count(ac_hub, Delivery), count(ac_hub, Event)
    hook = urlencode({"type": "unsubscribe", "date_time": activecampaign.memberships[1]["udate"],
                      "initiated_from": "public", "list": "3", "contact[id]": "2",
                      "contact[email]": "ac2@example.com"}).encode()
    web = create_app(ac_hub).test_client()
    answer = web.post(f"/webhooks/activecampaign/{TOKEN}", data=hook,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    drain(ac_hub)
    assert (count(ac_hub, Delivery), count(ac_hub, Event)) == (deliveries, events)
