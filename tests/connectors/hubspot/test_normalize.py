"""HubSpot batches -> canonical events, one per element, field by field from the recorded fixtures;
the composite dedup key; and the same batches through the real pipeline."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner

import connectors
from connectors.base import InboundRequest, RawDelivery
from connectors.hubspot.normalize import delivery_key
from hub.cli import cli
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent
from hub.store import Delivery, Event, ExternalId
from tests.conftest import FIXTURES
from tests.connectors.hubspot.test_verify import v3_headers
from tests.helpers import count, drain, rows

HUBSPOT = FIXTURES / "hubspot"
HS = connectors.get("hubspot")
RECEIVED = datetime(2026, 4, 1, tzinfo=timezone.utc)


def normalize(name: str | bytes) -> list[CanonicalEvent]:
    body = (HUBSPOT / name).read_bytes() if isinstance(name, str) else name
    return HS.normalize(RawDelivery(3, "hubspot", {}, body, RECEIVED))


def meta(event_id: int, subscription_id: int, **extra: Any) -> dict[str, Any]:
    return {"portal_id": "62515", "app_id": "54321", "subscription_id": str(subscription_id),
            "event_id": str(event_id), "attempt": 0, "change_source": "CRM_UI", "source_id": "userId:881", **extra}


def test_contact_creation() -> None:
    [event] = normalize("contact.creation.json")
    assert event.type == "subscriber.created"
    assert event.provider == "hubspot" and event.providertype == "contact.creation"
    assert event.providereventid == "62515:2001:1001:1767225601124"
    assert event.time == "2026-01-01T00:00:01.124000Z"  # occurredAt is epoch milliseconds
    assert event.subject == "4051"
    assert event.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}
    assert event.data["meta"] == meta(1001, 2001, change_flag="CREATED")


def test_email_change_carries_the_new_address() -> None:
    [event] = normalize("contact.propertyChange.email.json")
    assert event.type == "subscriber.updated"
    assert event.providertype == "contact.propertyChange"
    assert event.data["subscriber"] == {"email": "ann.lee@example.com", "external_ids": {"hubspot": "4051"}}
    assert event.data["change"] == {"property": "email", "value": "Ann.Lee@Example.com", "source": "CRM_UI"}


def test_lifecycle_stage_change() -> None:
    [event] = normalize("contact.propertyChange.lifecyclestage.json")
    assert event.type == "subscriber.updated"
    assert event.data["subscriber"] == {"lifecycle_stage": "customer", "external_ids": {"hubspot": "4051"}}
    assert event.data["change"]["property"] == "lifecyclestage"


def test_email_opt_out_is_a_consent_change() -> None:
    [event] = normalize("contact.propertyChange.hs_email_optout.json")
    assert event.type == "subscriber.consent_changed"
    assert event.subject == "4051"
    assert event.data["consent"] == {"channel": "email", "state": "unsubscribed", "provider_state": "true",
                                     "property": "hs_email_optout"}
    assert event.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}


def _change(prop: str, value: str, **extra: Any) -> bytes:
    return json.dumps([{"eventId": 9, "subscriptionId": 3, "portalId": 62515, "occurredAt": 1767225600000,
                        "subscriptionType": "contact.propertyChange", "objectId": 4051, "propertyName": prop,
                        "propertyValue": value, **extra}]).encode()


def test_opting_back_in_and_per_type_opt_outs() -> None:
    [back_in] = normalize(_change("hs_email_optout", "false"))
    assert back_in.data["consent"]["state"] == "subscribed"
    # one subscription type only: a channel of its own, so "all e-mail" consent is untouched
    [one_type] = normalize(_change("hs_email_optout_8812345", "true"))
    assert one_type.type == "subscriber.consent_changed"
    assert one_type.data["consent"]["channel"] == "email:8812345"
    assert one_type.data["consent"]["state"] == "unsubscribed"


def test_any_other_property_is_an_update_with_the_change() -> None:
    [event] = normalize(_change("favourite_tea", "sencha"))
    assert event.type == "subscriber.updated"
    assert event.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}
    assert event.data["change"] == {"property": "favourite_tea", "value": "sencha"}


def test_deletion_privacy_deletion_and_merge() -> None:
    [deleted] = normalize("contact.deletion.json")
    assert deleted.type == "subscriber.deleted" and deleted.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}
    [privacy] = normalize("contact.privacyDeletion.json")
    assert privacy.type == "subscriber.redact_requested"
    assert privacy.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}
    assert privacy.data["privacy"] == {"reason": "hubspot_privacy_deletion"}
    [merged] = normalize("contact.merge.json")
    assert merged.type == "subscriber.merged"
    assert merged.subject == "4051"
    assert merged.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}
    assert merged.data["merge"] == {"provider": "hubspot", "primary_id": "4051", "merged_ids": ["4099"],
                                    "new_id": "4051", "properties_moved": 12}


def test_a_batch_gives_one_event_per_element_with_composite_ids() -> None:
    created, changed, unmapped = normalize("batch.json")
    # both carry eventId 1: the composite id tells them apart
    assert created.providereventid == "62515:2001:1:1767225600124"
    assert changed.providereventid == "62515:2002:1:1767225600124"
    assert (created.type, changed.type) == ("subscriber.created", "subscriber.updated")
    assert len({created.id, changed.id, unmapped.id}) == 3
    assert unmapped.type == "provider.unmapped" and unmapped.providertype == "deal.creation"
    assert unmapped.data["raw"]["objectId"] == 777


def test_normalizing_twice_gives_identical_events() -> None:
    for path in sorted(HUBSPOT.glob("*.json")):
        assert [e.to_dict() for e in normalize(path.name)] == [e.to_dict() for e in normalize(path.name)]


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b'"a string"', "JSON array"),
    (b"[1, 2]", "JSON array"),
    (b'[{"subscriptionType": "contact.creation", "occurredAt": 1767225600000}]', "objectId"),
    (b'[{"subscriptionType": "contact.creation", "objectId": 1}]', "no event time"),
    (b'[{"subscriptionType": "contact.creation", "objectId": 1, "occurredAt": "soon"}]', "occurredAt"),
])
def test_malformed_batches_raise_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        normalize(body)


# -- dedup key -----------------------------------------------------------------------------------
def _request(body: bytes) -> InboundRequest:
    return InboundRequest("POST", "https://h.test/webhooks/hubspot", {}, body)


def test_dedup_key_is_composite_and_ignores_the_attempt_number() -> None:
    single = (HUBSPOT / "contact.creation.json").read_bytes()
    assert HS.dedup_key(_request(single)) == "62515:2001:1001:1767225601124"
    retry = json.loads(single)
    retry[0]["attemptNumber"] = 3
    assert HS.dedup_key(_request(json.dumps(retry).encode())) == HS.dedup_key(_request(single))
    batch = json.loads((HUBSPOT / "batch.json").read_bytes())
    key = HS.dedup_key(_request(json.dumps(batch).encode()))
    assert key.startswith("batch:") and len(key) < 255
    assert key == HS.dedup_key(_request(json.dumps(list(reversed(batch))).encode()))  # order does not matter
    assert key != HS.dedup_key(_request(json.dumps(batch[:2]).encode()))
    assert delivery_key([{"eventId": 1, "portalId": 2}]) != delivery_key([{"eventId": 1, "portalId": 3}])
    assert HS.dedup_key(_request(b"not json")).startswith("sha256:")


# -- through the pipeline --------------------------------------------------------------------------
def test_batches_through_the_pipeline(make_hub: Any) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_HUBSPOT_CLIENT_SECRET="cs")
    client = create_app(hub).test_client()

    def post(body: bytes) -> Any:
        headers = {"Content-Type": "application/json",
                   **v3_headers(body, "cs", "http://localhost/webhooks/hubspot")}
        return client.post("/webhooks/hubspot", data=body, headers=headers)

    batch = (HUBSPOT / "batch.json").read_bytes()
    assert post(batch).status_code == 200
    # HubSpot re-batches a retry differently: a new delivery, but no event is recorded twice
    retried = json.loads(batch)[:2]
    for element in retried:
        element["attemptNumber"] = 1
    assert post(json.dumps(retried).encode()).get_json().get("duplicate") is None
    drain(hub)
    assert count(hub, Delivery) == 2
    recorded = sorted(e.type for e in rows(hub, Event, Event.origin == "provider"))
    assert recorded == ["provider.unmapped", "subscriber.created", "subscriber.updated"]
    assert [(x.provider, x.external_id) for x in rows(hub, ExternalId)] == [("hubspot", "5001")]


def test_hub_normalize_cli_for_hubspot() -> None:
    result = CliRunner().invoke(cli, ["normalize", "hubspot", str(HUBSPOT / "batch.json")])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [e["type"] for e in events] == ["subscriber.created", "subscriber.updated", "provider.unmapped"]
    assert events[1]["data"]["subscriber"]["email"] == "bo@example.com"
