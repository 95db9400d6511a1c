"""Klaviyo inbound: both authentication schemes against the shared contract, the Appendix A vector,
and every fixture normalized field by field."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

import pytest

from connectors.base import RawDelivery
from connectors.klaviyo import connector, verify
from hub.kernel.errors import VerificationError
from hub.store import Delivery, Event, Subscriber
from hub.store.models import DeliveryStatus
from tests.conftest import FIXTURES
from tests.connectors.contract import Signed, WebhookContract
from tests.helpers import count, drain, rows

KL = FIXTURES / "klaviyo"


def fixture(name: str) -> bytes:
    return (KL / f"{name}.json").read_bytes()


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def system_headers(body: bytes, secret: str = "klaviyo-secret-0001", timestamp: float | None = None) -> dict[str, str]:
    ts = iso(datetime.now(timezone.utc).timestamp() if timestamp is None else timestamp)
    return {"Klaviyo-Signature": verify.sign(body, secret, ts), "Klaviyo-Timestamp": ts,
            "Klaviyo-Webhook-Id": "01HWEBHOOK", "Content-Type": "application/json"}


def normalize(body: bytes) -> list[Any]:
    return connector.normalize(RawDelivery(1, "klaviyo", {}, body, datetime(2026, 1, 1, tzinfo=timezone.utc)))


class TestKlaviyoSystemWebhookContract(WebhookContract):
    connector = "klaviyo"
    secrets = ("klaviyo-secret-current", "klaviyo-secret-rolled-out")
    wrong_secret = "klaviyo-secret-wrong"
    timestamp_tolerance = verify.TOLERANCE

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_KLAVIYO_WEBHOOK_SECRET": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        ts = iso(timestamp)
        return Signed({"Klaviyo-Signature": verify.sign(body, secret, ts), "Klaviyo-Timestamp": ts})

    def sample_body(self) -> bytes:
        return fixture("received_email")


class TestKlaviyoFlowWebhookContract(WebhookContract):
    connector = "klaviyo"
    secrets = ("flow-token-current", "flow-token-rolled-out")
    wrong_secret = "flow-token-wrong"
    signs_body = False

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_KLAVIYO_FLOW_SECRET": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed({"X-Hub-Webhook-Secret": secret})

    def sample_body(self) -> bytes:
        return fixture("subscribed_to_email_marketing")


# -- the signature recipe ------------------------------------------------------------------------
VECTOR_BODY = b'{"data":[],"meta":{}}'
VECTOR_TS = "2026-01-01T00:00:00+00:00"
VECTOR_SIG = "38edd71019ea037efc353ed711ee613fb09cbd32bd52b4536a27bbdf25bb901d"
VECTOR_NOW = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc).timestamp()


def test_appendix_a_vector_8():
    assert verify.sign(VECTOR_BODY, "0123456789abcdef", VECTOR_TS) == VECTOR_SIG
    verify.verify_system(VECTOR_BODY, VECTOR_SIG, VECTOR_TS, ["0123456789abcdef"], now=VECTOR_NOW)


def test_signature_is_over_body_then_timestamp_not_the_reverse():
    reversed_order = verify.sign(VECTOR_TS.encode(), "0123456789abcdef", VECTOR_BODY.decode())
    with pytest.raises(VerificationError, match="no signature matches"):
        verify.verify_system(VECTOR_BODY, reversed_order, VECTOR_TS, ["0123456789abcdef"], now=VECTOR_NOW)


def test_upper_case_hex_is_accepted():
    verify.verify_system(VECTOR_BODY, VECTOR_SIG.upper(), VECTOR_TS, ["0123456789abcdef"], now=VECTOR_NOW)


def test_vector_is_stale_against_the_real_clock():
    with pytest.raises(VerificationError, match="tolerance"):
        verify.verify_system(VECTOR_BODY, VECTOR_SIG, VECTOR_TS, ["0123456789abcdef"])
    verify.verify_system(VECTOR_BODY, VECTOR_SIG, VECTOR_TS, ["0123456789abcdef"], tolerance=0)  # check disabled


@pytest.mark.parametrize("stamp", ["1767225600", "1767225600000", "2026-01-01T00:00:00Z",
                                   "2025-12-31T19:00:00-05:00"])
def test_timestamp_formats_read_leniently(stamp):
    assert verify.timestamp_seconds(stamp) == VECTOR_NOW - 60


def test_unreadable_timestamp_is_refused_even_when_signed():
    stamp = "yesterday"
    signature = verify.sign(VECTOR_BODY, "0123456789abcdef", stamp)
    with pytest.raises(VerificationError, match="neither ISO 8601 nor epoch"):
        verify.verify_system(VECTOR_BODY, signature, stamp, ["0123456789abcdef"], now=VECTOR_NOW)


def test_a_request_with_a_signature_is_never_accepted_on_the_flow_secret(make_hub):
    hub = make_hub(HUB_KLAVIYO_WEBHOOK_SECRET="klaviyo-secret-0001", HUB_KLAVIYO_FLOW_SECRET="flow-token")
    from hub.web import create_app

    body = fixture("received_email")
    answer = create_app(hub).test_client().post("/webhooks/klaviyo", data=body, headers={
        "Klaviyo-Signature": "00" * 32, "Klaviyo-Timestamp": iso(datetime.now(timezone.utc).timestamp()),
        "X-Hub-Webhook-Secret": "flow-token"})
    assert answer.status_code == 401
    assert count(hub, Delivery) == 0


def test_flow_secret_is_not_stored_with_the_delivery(make_hub):
    hub = make_hub(HUB_KLAVIYO_FLOW_SECRET="flow-token")
    from hub.web import create_app

    body = fixture("received_email")
    answer = create_app(hub).test_client().post("/webhooks/klaviyo", data=body, headers={
        "X-Hub-Webhook-Secret": "flow-token", "Content-Type": "application/json"})
    assert answer.status_code == 200
    (stored,) = rows(hub, Delivery)
    assert "x-hub-webhook-secret" not in stored.headers
    assert stored.dedup_key == "01HEXT0001"


# -- normalization, field by field ---------------------------------------------------------------
SUBSCRIBER = {"email": "ann@example.com", "phone": "+15555550100", "first_name": "Ann", "last_name": "Lee",
              "external_ids": {"klaviyo": "01HPROFILEANN"}}


@pytest.mark.parametrize("name, type_, external_id", [
    ("received_email", "message.delivered", "01HEXT0001"),
    ("opened_email", "message.opened", "01HEXT0002"),
    ("clicked_email", "message.clicked", "01HEXT0003"),
    ("bounced_email", "message.bounced", "01HEXT0004"),
])
def test_email_engagement(name, type_, external_id):
    (event,) = normalize(fixture(name))
    assert event.type == type_
    assert event.provider == "klaviyo"
    assert event.providertype == f"event:klaviyo.{name}"
    assert event.providereventid == external_id
    assert event.subject == "01HPROFILEANN"
    assert event.data["subscriber"] == SUBSCRIBER
    message = event.data["message"]
    assert message["channel"] == "email"
    assert message["id"] == "01HMSG1"
    assert message["subject"] == "Your January update"
    assert message["campaign"] == "January newsletter"
    assert message["event_id"] == json.loads(fixture(name))["data"][0]["payload"]["data"]["id"]


def test_times_are_rfc3339_utc_whatever_the_offset():
    assert normalize(fixture("received_email"))[0].time == "2026-01-01T10:00:00Z"
    assert normalize(fixture("opened_email"))[0].time == "2026-01-01T10:30:00Z"  # sent as 05:30:00-05:00


def test_click_carries_the_url_and_bounce_its_type():
    assert normalize(fixture("clicked_email"))[0].data["message"]["url"] == "https://shop.example.com/renew"
    assert normalize(fixture("bounced_email"))[0].data["message"]["bounce_type"] == "hard"


@pytest.mark.parametrize("name, channel, state", [
    ("subscribed_to_email_marketing", "email", "subscribed"),
    ("unsubscribed_from_email_marketing", "email", "unsubscribed"),
    ("subscribed_to_sms_marketing", "sms", "subscribed"),
    ("unsubscribed_from_sms_marketing", "sms", "unsubscribed"),
])
def test_consent_changes(name, channel, state):
    (event,) = normalize(fixture(name))
    assert event.type == "subscriber.consent_changed"
    assert event.data["consent"]["channel"] == channel
    assert event.data["consent"]["state"] == state
    assert event.data["subscriber"]["email"] == "ann@example.com"


def test_a_batch_becomes_one_event_per_element_and_unknown_topics_are_kept():
    events = normalize(fixture("batch"))
    assert [e.type for e in events] == ["message.opened", "message.clicked", "provider.unmapped"]
    assert [e.providereventid for e in events] == ["01HEXT0002", "01HEXT0003", "01HEXT0099"]
    unmapped = events[2]
    assert unmapped.providertype == "event:klaviyo.submitted_review"
    assert unmapped.data["raw"]["payload"]["data"]["attributes"]["event_properties"] == {"Rating": 5}
    assert unmapped.time == "2026-01-01T10:00:00Z"  # from the epoch timestamp: no datetime was sent


def test_an_element_repeated_in_another_batch_is_the_same_event():
    single = normalize(fixture("opened_email"))[0]
    in_batch = normalize(fixture("batch"))[0]
    assert single.id == in_batch.id


def test_normalizing_twice_gives_identical_events():
    assert [e.to_dict() for e in normalize(fixture("batch"))] == [e.to_dict() for e in normalize(fixture("batch"))]


def test_batch_dedup_key_covers_every_external_id():
    from connectors.base import InboundRequest

    key = connector.dedup_key(InboundRequest("POST", "http://x", {}, fixture("batch")))
    assert key.startswith("batch:")
    assert key != connector.dedup_key(InboundRequest("POST", "http://x", {}, fixture("opened_email")))


# -- end to end ----------------------------------------------------------------------------------
def test_unsubscribe_webhook_updates_consent(make_hub):
    hub = make_hub(HUB_KLAVIYO_WEBHOOK_SECRET="klaviyo-secret-0001")
    from hub.web import create_app

    client = create_app(hub).test_client()
    for name in ("subscribed_to_email_marketing", "unsubscribed_from_email_marketing"):
        body = fixture(name)
        assert client.post("/webhooks/klaviyo", data=body, headers=system_headers(body)).status_code == 200
    drain(hub)
    (subscriber,) = rows(hub, Subscriber)
    assert subscriber.email == "ann@example.com"
    assert subscriber.consent["email"] == "unsubscribed"
    assert count(hub, Event, Event.type == "subscriber.consent_changed") == 2


def test_malformed_but_signed_payload_is_stored_failed_and_replayable(make_hub):
    hub = make_hub(HUB_KLAVIYO_WEBHOOK_SECRET="klaviyo-secret-0001")
    from hub.web import create_app

    body = b'{"data": {"not": "a list"}}'
    answer = create_app(hub).test_client().post("/webhooks/klaviyo", data=body, headers=system_headers(body))
    assert answer.status_code == 200
    drain(hub)
    (delivery,) = rows(hub, Delivery)
    assert delivery.status == DeliveryStatus.FAILED
    assert "not a Klaviyo webhook" in delivery.error


def test_the_profile_locations_time_zone_reaches_the_subscriber() -> None:
    payload = json.loads(fixture("opened_email"))
    profile = payload["data"][0]["payload"]["included"][0]["attributes"]
    # Klaviyo's profile: location {address1, city, country, region, zip, timezone (IANA), ip, ...}
    profile["location"] = {"city": "Boston", "country": "United States", "timezone": "America/New_York"}
    [event] = normalize(json.dumps(payload).encode())
    assert event.data["subscriber"]["timezone"] == "America/New_York"
    assert event.data["subscriber"]["external_ids"] == {"klaviyo": "01HPROFILEANN"}
    [without] = normalize(fixture("opened_email"))
    assert "timezone" not in without.data["subscriber"]
