"""ActiveCampaign inbound: the URL-token scheme against the shared contract, form parsing,
lenient date_time, derived dedup keys, every fixture field by field, and ``hub normalize``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from connectors.activecampaign import connector
from connectors.activecampaign.normalize import parse_date_time, parse_form
from connectors.base import InboundRequest, RawDelivery
from hub.store import Delivery, Subscriber
from hub.store.models import DeliveryStatus
from tests.conftest import FIXTURES
from tests.connectors.contract import Signed, WebhookContract
from tests.helpers import count, drain, rows

AC = FIXTURES / "activecampaign"
RECEIVED = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)
FORM = "application/x-www-form-urlencoded"


def fixture(name: str) -> bytes:
    return (AC / f"{name}.form").read_bytes()


def normalize(body: bytes) -> list[Any]:
    return connector.normalize(RawDelivery(1, "activecampaign", {}, body, RECEIVED))


class TestActiveCampaignWebhookContract(WebhookContract):
    connector = "activecampaign"
    secrets = ("ac-url-token-current", "ac-url-token-rolled-out")
    wrong_secret = "ac-url-token-wrong"
    content_type = FORM
    signs_body = False

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed(token=secret)

    def sample_body(self) -> bytes:
        return fixture("subscribe")


def post(hub: Any, body: bytes, token: str | None = "ac-token") -> Any:
    from hub.web import create_app

    path = "/webhooks/activecampaign" + (f"/{token}" if token else "")
    return create_app(hub).test_client().post(path, data=body, headers={"Content-Type": FORM})


# -- never 410 (ActiveCampaign disables a webhook that gets one) ----------------------------------
def test_wrong_token_unreadable_body_and_unknown_type_never_get_410(make_hub):
    hub = make_hub(HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN="ac-token")
    assert post(hub, fixture("subscribe"), token="nope").status_code == 401
    assert post(hub, b"%%%not a form\xff", token="ac-token").status_code == 200
    assert post(hub, fixture("deal_add")).status_code == 200
    drain(hub)
    statuses = sorted(d.status for d in rows(hub, Delivery))
    assert statuses == [DeliveryStatus.FAILED, DeliveryStatus.PROCESSED]  # the bad body is kept, replayable


# -- form parsing ---------------------------------------------------------------------------------
def test_bracket_keys_become_nested_structures():
    form = parse_form(b"type=update&contact%5Bid%5D=42&contact%5Bemail%5D=a%40example.com"
                      b"&contact%5Bfields%5D%5Bplan%5D=pro&contact%5Bfields%5D%5Bcompany+size%5D=10"
                      b"&list%5B%5D%5Bid%5D=3&list%5B%5D%5Bname%5D=News&list%5B%5D%5Bid%5D=5"
                      b"&updated_fields%5B0%5D=email&updated_fields%5B1%5D=phone")
    assert form == {"type": "update",
                    "contact": {"id": "42", "email": "a@example.com",
                                "fields": {"plan": "pro", "company size": "10"}},
                    "list": [{"id": "3", "name": "News"}, {"id": "5"}],
                    "updated_fields": ["email", "phone"]}


def test_a_later_key_of_another_shape_replaces_the_earlier_one_as_php_does():
    assert parse_form(b"list=0&list[][id]=3")["list"] == [{"id": "3"}]
    assert parse_form(b"list[][id]=3&list=0")["list"] == "0"


@pytest.mark.parametrize("given, expected", [
    ("2026-01-01T10:00:00-05:00", "2026-01-01T15:00:00Z"),
    ("2026-01-01T15:00:00Z", "2026-01-01T15:00:00Z"),
    ("2026-01-01 10:00:00", "2026-01-01T10:00:00Z"),  # no zone: read as UTC
    ("2026-01-01 10:00:00 -0500", "2026-01-01T15:00:00Z"),
    ("2026-01-01 10:00:00-05:00", "2026-01-01T15:00:00Z"),
    ("1767261600", "2026-01-01T10:00:00Z"),
    ("01/02/2026 10:00:00 AM", "2026-01-02T10:00:00Z"),
    ("soon", None),
    ("", None),
])
def test_date_time_is_read_leniently(given, expected):
    assert parse_date_time(given) == expected


def test_missing_date_time_falls_back_to_the_receive_time():
    (event,) = normalize(b"type=subscribe&contact[id]=42&contact[email]=a%40example.com&list=3")
    assert event.time == "2026-02-01T12:00:00Z"


# -- dedup ----------------------------------------------------------------------------------------
def key(body: bytes) -> str:
    return connector.dedup_key(InboundRequest("POST", "http://x", {}, body, token="t"))


def test_dedup_key_is_type_contact_list_and_time():
    assert key(fixture("subscribe")) == "subscribe:42:3:2026-01-01T15:00:00Z"


def test_the_same_event_sent_twice_in_another_field_order_collapses():
    pairs = [("type", "subscribe"), ("date_time", "2026-01-01 10:00:00"), ("contact[id]", "42"), ("list", "3")]
    assert key(urlencode(pairs).encode()) == key(urlencode(list(reversed(pairs))).encode())


def test_two_clicks_on_different_links_in_the_same_second_stay_apart():
    base = [("type", "click"), ("date_time", "2026-01-01 10:00:00"), ("contact[id]", "42"), ("list", "3")]
    first = key(urlencode(base + [("link[url]", "https://a.example")]).encode())
    second = key(urlencode(base + [("link[url]", "https://b.example")]).encode())
    assert first != second


def test_forms_without_date_time_collapse_only_when_identical():
    assert key(b"type=update&contact[id]=42").startswith("sha256:")
    assert key(b"type=update&contact[id]=42") != key(b"type=update&contact[id]=42&contact[phone]=1")


# -- normalization, field by field ----------------------------------------------------------------
SUBSCRIBER = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "phone": "+15555550100",
              "external_ids": {"activecampaign": "42"}, "tags": "vip,trial", "fields": {"plan": "pro"}}


def test_subscribe():
    (event,) = normalize(fixture("subscribe"))
    assert event.type == "subscriber.consent_changed"
    assert event.providertype == "subscribe"
    assert event.providereventid == "subscribe:42:3:2026-01-01T15:00:00Z"
    assert event.time == "2026-01-01T15:00:00Z"
    assert event.subject == "42"
    assert event.data["subscriber"] == SUBSCRIBER
    assert event.data["consent"] == {"channel": "email", "state": "subscribed", "list": "3", "source": "admin",
                                     "form": "0"}


def test_unsubscribe_reads_the_list_array_and_the_reason():
    (event,) = normalize(fixture("unsubscribe"))
    assert event.type == "subscriber.consent_changed"
    assert event.time == "2026-01-02T09:30:00Z"
    consent = event.data["consent"]
    assert consent["state"] == "unsubscribed"
    assert consent["channel"] == "email"
    assert consent["list"] == "3"
    assert consent["reason"] == "Too many emails"


def test_update():
    (event,) = normalize(fixture("update"))
    assert event.type == "subscriber.updated"
    assert event.time == "2026-01-03T08:00:00Z"
    assert event.data["subscriber"] == SUBSCRIBER
    assert event.data["changes"] == ["phone"]


@pytest.mark.parametrize("name, tag, change, time", [
    ("contact_tag_added", "vip", "added", "2026-01-04T17:00:00Z"),
    ("contact_tag_removed", "trial", "removed", "2026-01-04T13:00:00Z"),
])
def test_tags(name, tag, change, time):
    (event,) = normalize(fixture(name))
    assert event.type == "subscriber.tagged"
    assert event.data["tag"] == {"name": tag, "change": change}
    assert event.time == time
    assert event.data["subscriber"]["external_ids"] == {"activecampaign": "42"}


def test_open_click_bounce():
    (opened,) = normalize(fixture("open"))
    assert opened.type == "message.opened"
    assert opened.time == "2026-01-05T09:00:00Z"
    assert opened.data["message"] == {"channel": "email", "campaign_id": "12", "campaign": "January newsletter",
                                      "message_id": "7", "subject": "Your January update",
                                      "initiated_from": "admin"}
    (clicked,) = normalize(fixture("click"))
    assert clicked.type == "message.clicked"
    assert clicked.data["message"]["url"] == "https://shop.example.com/renew"
    (bounced,) = normalize(fixture("bounce"))
    assert bounced.type == "message.bounced"
    assert bounced.data["message"]["bounce_type"] == "hard"
    assert bounced.data["message"]["bounce_code"] == "5.1.1"
    assert bounced.data["subscriber"]["email"] == "ann@example.com"


def test_an_unmapped_type_is_kept_with_the_parsed_form():
    (event,) = normalize(fixture("deal_add"))
    assert event.type == "provider.unmapped"
    assert event.providertype == "deal_add"
    assert event.data["raw"]["deal"] == {"id": "9", "title": "Annual plan", "value": "29900", "currency": "usd"}


def test_normalizing_twice_gives_identical_events():
    for path in sorted(AC.glob("*.form")):
        assert [e.to_dict() for e in normalize(path.read_bytes())] == \
            [e.to_dict() for e in normalize(path.read_bytes())], path.name


# -- end to end and the CLI -----------------------------------------------------------------------
def test_unsubscribe_webhook_reaches_the_profile(make_hub):
    hub = make_hub(HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN="ac-token")
    assert post(hub, fixture("subscribe")).status_code == 200
    assert post(hub, fixture("unsubscribe")).status_code == 200
    drain(hub)
    (subscriber,) = rows(hub, Subscriber)
    assert subscriber.email == "ann@example.com"
    assert subscriber.consent["email"] == "unsubscribed"
    assert count(hub, Delivery, Delivery.status == DeliveryStatus.PROCESSED) == 2


def test_hub_normalize_prints_the_events_of_a_form_body(hub):
    from hub.cli import cli

    result = CliRunner().invoke(cli, ["normalize", "activecampaign", str(AC / "unsubscribe.form")])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    event = json.loads(line)
    assert event["type"] == "subscriber.consent_changed"
    assert event["data"]["consent"]["state"] == "unsubscribed"
    assert event["data"]["subscriber"]["email"] == "ann@example.com"
