"""Privacy end to end on PostgreSQL: a data request exports everything the hub holds for a person,
and an erasure request then leaves no trace of them anywhere, only a PII-free redaction record."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import select

from connectors.klaviyo import verify as klaviyo_verify
from connectors.shopify import verify as shopify_verify
from hub.ingest.pipeline import record_events
from hub.kernel.events import CanonicalEvent, EventType
from hub.store import Action, Attempt, Base, Delivery, Event, ExternalId, Subscriber
from hub.store.models import ActionStatus, DeliveryStatus
from hub.store.privacy_models import DataExport, Redaction
from hub.subscribers import privacy
from tests.conftest import FIXTURES
from tests.helpers import drain, recent, rows

# Maya is the person who asks; Bob shares a Klaviyo batch with her and must be left alone.
MAYA = ("maya.lin@example.com", "maya", "+14155550142", "7062102134962")
RULES = """
rules:
  - id: order-thanks
    on: [order.placed]
    actions:
      - klaviyo.track_event:
          metric: Order Thanks
          properties: {email: "{{ subscriber.email }}", first_name: "{{ subscriber.first_name }}"}
  - id: order-follow-up
    on: [order.placed]
    schedule: {after: event.time, offsets: [900d]}
    actions:
      - klaviyo.track_event:
          metric: Order Follow-up
          properties: {email: "{{ subscriber.email }}"}
"""


@pytest.fixture
def privacy_hub(make_hub, tmp_path: Path) -> Any:
    (tmp_path / "rules.yaml").write_text(RULES)
    return make_hub(HUB_RULES_PATH=str(tmp_path), HUB_SHOPIFY_WEBHOOK_SECRET="shpss_test",
                    HUB_KLAVIYO_WEBHOOK_SECRET="klaviyo-secret-0001", HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN="ac-token")


def shopify(client: Any, topic: str, body: bytes, webhook_id: str) -> None:
    answer = client.post("/webhooks/shopify", data=body, headers={
        "X-Shopify-Hmac-Sha256": shopify_verify.sign(body, "shpss_test"), "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Shop-Domain": "tea-house.myshopify.com",
        "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def klaviyo(client: Any, body: bytes) -> None:
    from datetime import datetime, timezone

    ts = datetime.now(timezone.utc).isoformat(timespec="seconds")
    answer = client.post("/webhooks/klaviyo", data=body, headers={
        "Klaviyo-Signature": klaviyo_verify.sign(body, "klaviyo-secret-0001", ts), "Klaviyo-Timestamp": ts,
        "Content-Type": "application/json"})
    assert answer.status_code == 200


def klaviyo_batch() -> bytes:
    doc = json.loads((FIXTURES / "klaviyo" / "opened_email.json").read_text())
    maya = doc["data"][0]
    maya["payload"]["included"][0]["attributes"].update(email="Maya.Lin@Example.com", first_name="Maya",
                                                         last_name="Lin", phone_number="+14155550142")
    bob = json.loads(json.dumps(maya))
    bob["external_id"] = "01HEXTBOB"
    bob["payload"]["data"]["relationships"]["profile"]["data"]["id"] = "01HPROFILEBOB"
    bob["payload"]["included"][0].update(id="01HPROFILEBOB", attributes={
        "email": "bob.stone@example.com", "first_name": "Bob", "last_name": "Stone", "phone_number": "+15555550199"})
    maya["payload"]["included"][0]["id"] = "01HPROFILEMAYA"
    maya["payload"]["data"]["relationships"]["profile"]["data"]["id"] = "01HPROFILEMAYA"
    return json.dumps({"data": [maya, bob], "meta": doc["meta"]}).encode()


def everything(hub: Any) -> str:
    """Every row of every table as lower-case text: what a privacy audit would grep."""
    return "\n".join(f"{table}: {text}" for table, text in by_table(hub).items())


def by_table(hub: Any) -> dict[str, str]:
    out = {}
    with hub.store.session() as s:
        for table in Base.metadata.sorted_tables:
            parts = []
            for row in s.execute(select(table)).mappings():
                for value in row.values():
                    parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes)
                                 else json.dumps(value, default=str) if isinstance(value, (dict, list))
                                 else str(value))
            out[table.name] = "\n".join(parts).lower()
    return out


@responses.activate
def test_export_then_redact_end_to_end(privacy_hub):
    hub = privacy_hub
    from hub.web import create_app

    responses.post("https://klaviyo.test/api/events", status=202)
    client = create_app(hub).test_client()

    # Maya's footprint: an order (Shopify), an ActiveCampaign subscription (form body, URL-encoded
    # e-mail), a Klaviyo batch shared with Bob, and a verified Klaviyo payload that failed to normalize.
    order = recent((FIXTURES / "shopify" / "orders.create.json").read_bytes(), "created_at", "processed_at", "updated_at")
    shopify(client, "orders/create", order, "wh-order")
    form = urlencode([("type", "subscribe"), ("date_time", "2026-01-03 10:00:00"), ("list", "3"),
                      ("contact[id]", "4242"), ("contact[email]", "Maya.Lin@Example.com"),
                      ("contact[first_name]", "Maya"), ("contact[phone]", "+14155550142")]).encode()
    assert client.post("/webhooks/activecampaign/ac-token", data=form,
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
    klaviyo(client, klaviyo_batch())
    klaviyo(client, b'{"data": {"oops": "maya.lin@example.com"}}')
    drain(hub)

    maya_id = privacy.find_subscriber_id(hub.store.sessions(), "MAYA.LIN@example.com")
    assert maya_id is not None
    with hub.store.session() as s:
        thanks = s.execute(select(Action).where(Action.rule_id == "order-thanks")).scalar_one()
        follow_up = s.execute(select(Action).where(Action.rule_id == "order-follow-up")).scalar_one()
        assert thanks.status == ActionStatus.DONE and thanks.params["properties"]["email"] == MAYA[0]
        assert follow_up.status == ActionStatus.SCHEDULED
    assert MAYA[0] in json.dumps([r.request for r in rows(hub, Attempt)])

    # the data request: an export of everything, stored
    shopify(client, "customers/data_request", (FIXTURES / "shopify" / "customers.data_request.json").read_bytes(),
            "wh-data-request")
    drain(hub)
    (stored,) = rows(hub, DataExport)
    document = stored.document
    assert stored.subscriber_id == maya_id
    assert [s["email"] for s in document["subscribers"]] == [MAYA[0]]
    assert {(x["provider"], x["id"]) for x in document["external_ids"]} >= {
        ("shopify", "7062102134962"), ("activecampaign", "4242"), ("klaviyo", "01HPROFILEMAYA")}
    assert {e["type"] for e in document["events"]} >= {"order.placed", "subscriber.consent_changed",
                                                       "message.opened"}
    assert {d["connector"] for d in document["deliveries"]} == {"shopify", "activecampaign", "klaviyo"}
    (batch,) = [d for d in document["deliveries"] if d["connector"] == "klaviyo"]
    assert "body" not in batch and "body_withheld" in batch  # it also carried Bob
    assert any("Maya.Lin%40Example.com" in d["body"] for d in document["deliveries"])
    assert {a["rule_id"] for a in document["actions"]} == {"order-thanks", "order-follow-up"}
    (done,) = [a for a in document["actions"] if a["rule_id"] == "order-thanks"]
    assert done["attempts"] and MAYA[0] in json.dumps(done["attempts"][0]["request"])
    assert "bob.stone@example.com" not in json.dumps(document)  # only Maya's data

    # the erasure request
    before = everything(hub)
    assert all(needle in before for needle in MAYA)
    shopify(client, "customers/redact", (FIXTURES / "shopify" / "customers.redact.json").read_bytes(), "wh-redact")
    drain(hub)

    after = everything(hub)
    for needle in MAYA:
        assert needle not in after, ([t for t, text in by_table(hub).items() if needle in text], sorted(rows(hub, Redaction)[0].counts))
    assert "maya.lin%40example.com" not in after
    assert re.search(r"\blin\b", after) is None  # her last name, as a word
    assert "bob.stone@example.com" in after and "01hprofilebob" in after  # Bob is untouched

    (record,) = rows(hub, Redaction)
    assert record.provider == "shopify"
    assert hashlib.sha256(b"email:maya.lin@example.com").hexdigest() in record.identifier_hashes
    assert record.subscriber_ids == [maya_id]
    assert record.counts["actions_cancelled"] == 1
    assert record.counts["data_exports"] == 1
    assert record.counts["deliveries"] >= 5
    with hub.store.session() as s:
        maya = s.get(Subscriber, maya_id)
        assert (maya.email, maya.first_name, maya.last_name, maya.phone) == (None, None, None, None)
        assert maya.redacted_at is not None
        assert s.execute(select(ExternalId).where(ExternalId.subscriber_id == maya_id)).first() is None
        follow_up = s.get(Action, follow_up.id)
        assert follow_up.status == ActionStatus.CANCELLED
        request_event = s.execute(select(Event).where(Event.type == EventType.SUBSCRIBER_REDACT_REQUESTED)
                                  ).scalar_one()
        assert request_event.data == {"redaction": {"id": record.id, "identifiers_hash": record.identifiers_hash,
                                                    "subscribers": 1}}
        statuses = {d.dedup_key: d.status for d in s.execute(select(Delivery)).scalars()}
    assert statuses["wh-order"] == DeliveryStatus.REDACTED
    assert statuses["wh-redact"] == DeliveryStatus.PROCESSED  # the request itself, scrubbed
    assert list(rows(hub, DataExport)) == []


def test_redact_removes_the_person_from_a_failed_delivery_without_a_subscriber(hub):
    with hub.store.session() as s:
        s.add(Delivery(connector="klaviyo", dedup_key="x", headers={}, body=b'{"email": "Zoe@Example.com"}',
                       received_at=privacy.utcnow(), status=DeliveryStatus.FAILED, error="bad", attempts=1,
                       enqueued=0, event_count=0))
    event = CanonicalEvent(type=EventType.SUBSCRIBER_REDACT_REQUESTED, time="2026-01-01T00:00:00Z",
                           provider="hubspot", providereventid="p1", providertype="contact.privacyDeletion",
                           data={"subscriber": {"email": "zoe@example.com", "external_ids": {"hubspot": "901"}}})
    with hub.store.session() as s:
        record_events(hub, s, [event])
    (delivery,) = rows(hub, Delivery)
    assert delivery.status == DeliveryStatus.REDACTED
    assert b"zoe" not in delivery.body.lower()
    assert json.loads(delivery.body) == {"email": "[redacted]"}
    (record,) = rows(hub, Redaction)
    assert record.subscriber_ids == [] and record.counts == {"deliveries": 1, "events": 1}


def test_form_bodies_are_scrubbed_field_by_field():
    person = privacy.Person(emails={"ann@example.com"}, names={"Ann"})
    body = b"type=subscribe&contact%5Bemail%5D=Ann%40Example.com&contact%5Bfirst_name%5D=Ann&list=3&note=Hi+Ann"
    scrubbed = privacy.Person.scrub_body(person, body).decode()
    assert "ann" not in scrubbed.lower()
    assert "type=subscribe" in scrubbed and "list=3" in scrubbed


def test_cli_export_and_redact(privacy_hub):
    from hub.cli import cli

    event = CanonicalEvent(type=EventType.SUBSCRIBER_CREATED, time="2026-01-01T00:00:00Z", provider="stripe",
                           providereventid="evt_cli", providertype="customer.created",
                           data={"subscriber": {"email": "cli@example.com", "first_name": "Cleo",
                                                "external_ids": {"stripe": "cus_CLIPERSON"}}})
    with privacy_hub.store.session() as s:
        record_events(privacy_hub, s, [event])
    runner = CliRunner()
    exported = runner.invoke(cli, ["privacy", "export", "cli@example.com"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document["subscribers"][0]["email"] == "cli@example.com"
    assert document["events"][0]["data"]["subscriber"]["external_ids"] == {"stripe": "cus_CLIPERSON"}

    redacted = runner.invoke(cli, ["privacy", "redact", "cli@example.com", "--yes"])
    assert redacted.exit_code == 0, redacted.output
    assert redacted.output.startswith("redaction ")
    assert "cli@example.com" not in everything(privacy_hub) and "cus_cliperson" not in everything(privacy_hub)
    listed = runner.invoke(cli, ["privacy", "redactions", "--email", "CLI@example.com", "--json"])
    assert json.loads(listed.output)["provider"] == "operator"
    assert runner.invoke(cli, ["privacy", "export", "cli@example.com"]).exit_code != 0  # nobody by that e-mail now


def test_redaction_works_on_the_embedded_sqlite_default(sqlite_hub):
    hub = sqlite_hub
    with hub.store.session() as s:
        delivery = Delivery(connector="activecampaign", dedup_key="k", headers={}, received_at=privacy.utcnow(),
                            body=b"type=update&contact%5Bid%5D=77&contact%5Bemail%5D=Sam%40Example.com",
                            status=DeliveryStatus.PROCESSED, attempts=1, enqueued=0, event_count=1)
        s.add(delivery)
        s.flush()
        delivery_id = delivery.id
    event = CanonicalEvent(type=EventType.SUBSCRIBER_UPDATED, time="2026-01-01T00:00:00Z", provider="activecampaign",
                           providereventid="u1", providertype="update",
                           data={"subscriber": {"email": "sam@example.com", "external_ids": {"activecampaign": "77"}}})
    with hub.store.session() as s:
        record_events(hub, s, [event], delivery_id=delivery_id)
        sid = privacy.find_subscriber_id(s, "sam@example.com")
        privacy.redact(s, privacy.person_from_subscriber(s, sid))
    (stored,) = rows(hub, Delivery)
    assert b"sam" not in stored.body.lower() and stored.status == DeliveryStatus.REDACTED
    (recorded,) = rows(hub, Event, Event.provider_event_id == "u1")
    assert recorded.data["subscriber"] == {"email": "[redacted]", "external_ids": {"activecampaign": "[redacted]"}}


def test_erasure_hashes_provider_event_ids_and_dedup_keys_that_name_the_person(privacy_hub):
    from hub.web import create_app

    hub = privacy_hub
    client = create_app(hub).test_client()
    # Shopify consent events are keyed customer/<id>/...; ActiveCampaign keys carry the contact id
    shopify(client, "customers/update", (FIXTURES / "shopify" / "customers.update.json").read_bytes(), "wh-update")
    for contact, email in (("4242", "Maya.Lin@Example.com"), ("5151", "other@example.com")):
        form = urlencode([("type", "subscribe"), ("date_time", "2026-01-03 10:00:00"), ("list", "3"),
                          ("contact[id]", contact), ("contact[email]", email)]).encode()
        assert client.post("/webhooks/activecampaign/ac-token", data=form,
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
    drain(hub)
    with hub.store.session() as s:
        event_ids = set(s.execute(select(Event.provider_event_id)).scalars())
        dedup_keys = set(s.execute(select(Delivery.dedup_key)).scalars())
    assert any("7062102134962" in e for e in event_ids) and any(":4242:" in k for k in dedup_keys)

    shopify(client, "customers/redact", (FIXTURES / "shopify" / "customers.redact.json").read_bytes(), "wh-redact")
    drain(hub)

    with hub.store.session() as s:
        event_ids = set(s.execute(select(Event.provider_event_id)).scalars())
        dedup_keys = set(s.execute(select(Delivery.dedup_key)).scalars())
    for key in event_ids | dedup_keys:
        assert "7062102134962" not in key and not re.search(r"(?<!\d)4242(?!\d)", key), key
        assert "maya" not in key.lower(), key
    assert any(k.startswith("redacted:") and len(k) == len("redacted:") + 64 for k in dedup_keys)
    assert any(":5151:" in k for k in dedup_keys)  # the other subscriber's delivery keeps its key
    assert any(":5151:" in e for e in event_ids)
