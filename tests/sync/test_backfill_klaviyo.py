"""hub backfill klaviyo: each profile's marketing consent, read from Get Profiles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

import connectors
from hub import backfill
from hub.kernel.values import rfc3339
from hub.runtime import Hub
from hub.store import Subscriber, utcnow
from tests.helpers import rows

PROFILES = "https://klaviyo.test/api/profiles"
AT = rfc3339(utcnow() - timedelta(days=40))  # when each consent was given, as Klaviyo keeps it


def profile(pid: str, email: str, email_consent: str, sms_consent: str = "NEVER_SUBSCRIBED") -> dict[str, Any]:
    at = AT
    return {"type": "profile", "id": pid, "attributes": {
        "email": email, "updated": at, "created": at, "location": {"timezone": "Europe/Paris"},
        "subscriptions": {"email": {"marketing": {"consent": email_consent, "consent_timestamp": at,
                                                  "method": "FORM"}},
                          "sms": {"marketing": {"consent": sms_consent, "consent_timestamp": at}}}}}


CURSOR = f"{PROFILES}?page%5Bcursor%5D=abc&additional-fields%5Bprofile%5D=subscriptions"


def serve_two_pages() -> None:
    responses.get(PROFILES, match=[responses.matchers.query_param_matcher({}, strict_match=False)],
                  json={"data": [profile("P1", "a@example.com", "SUBSCRIBED", "UNSUBSCRIBED")],
                        "links": {"next": CURSOR}})
    responses.get(CURSOR, json={"data": [profile("P2", "b@example.com", "UNSUBSCRIBED"),
                                         profile("P3", "c@example.com", "NEVER_SUBSCRIBED")],
                                "links": {"next": None}})


@responses.activate
def test_consent_is_read_page_by_page_and_recorded_on_the_profiles_once(hub: Hub) -> None:
    serve_two_pages()
    klaviyo = connectors.get("klaviyo")
    counts = backfill.Run(hub, klaviyo).start(utcnow() - timedelta(days=90))
    assert counts.fetched == counts.recorded == 3  # P1 email + sms, P2 email; P3 never said anything
    consent = {s.email: s.consent for s in rows(hub, Subscriber)}
    assert set(consent) == {"a@example.com", "b@example.com"}
    assert consent["a@example.com"]["email"] == "subscribed"
    assert consent["a@example.com"]["sms"] == "unsubscribed"
    assert consent["b@example.com"]["email"] == "unsubscribed"
    # the profile's time zone travels with its consent (location.timezone)
    assert {s.timezone for s in rows(hub, Subscriber)} == {"Europe/Paris"}
    first = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert first["additional-fields[profile]"] == ["subscriptions"] and first["page[size]"] == ["100"]
    assert first["filter"][0].startswith("and(greater-than(updated,") and first["sort"] == ["updated"]
    assert ".000" not in first["filter"][0] and "Z),less-than(updated," in first["filter"][0]
    assert responses.calls[1].request.url == CURSOR  # links.next as given
    assert responses.calls[0].request.headers["Authorization"] == "Klaviyo-API-Key pk_test_klaviyo"
    responses.reset()
    serve_two_pages()
    again = backfill.Run(hub, klaviyo).start(utcnow() - timedelta(days=90))
    assert again.recorded == 0 and again.present == 3
