"""HubSpot's generic webhook format (``object.*`` with ``objectTypeId``): contacts give exactly the
events the legacy format gives, other objects are stored and visible, time zones reach the profile,
and an opt-out made in HubSpot stops the marketing rules."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from click.testing import CliRunner

import connectors
from connectors.base import RawDelivery
from connectors.hubspot.normalize import iana_zone
from hub.cli import cli
from hub.kernel.events import CanonicalEvent
from hub.store import Delivery, Event, ExternalId, Subscriber
from tests.conftest import FIXTURES
from tests.connectors.hubspot.test_verify import v2_headers, v3_headers
from tests.helpers import count, drain, rows

HUBSPOT = FIXTURES / "hubspot"
HS = connectors.get("hubspot")
RECEIVED = datetime(2026, 4, 1, tzinfo=timezone.utc)


def normalize(name: str) -> list[CanonicalEvent]:
    return HS.normalize(RawDelivery(3, "hubspot", {}, (HUBSPOT / name).read_bytes(), RECEIVED))


def meta(event_id: int, subscription_id: int, **extra: Any) -> dict[str, Any]:
    return {"portal_id": "62515", "app_id": "54321", "subscription_id": str(subscription_id),
            "event_id": str(event_id), "attempt": 0, "change_source": "CRM_UI", "source_id": "userId:881",
            "object_type_id": "0-1", **extra}


def test_a_generic_contact_creation_is_a_subscriber_created() -> None:
    [event] = normalize("object.creation.json")
    assert event.to_dict() | {"id": ""} == {
        "specversion": "1.0", "id": "", "source": "/connectors/hubspot", "type": "subscriber.created",
        "time": "2026-01-01T00:00:02.100000Z", "subject": "4051", "datacontenttype": "application/json",
        "provider": "hubspot", "providereventid": "62515:4001:3001:1767225602100",
        "providertype": "object.creation",
        "data": {"subscriber": {"external_ids": {"hubspot": "4051"}}, "meta": meta(3001, 4001, change_flag="CREATED")},
    }


def test_a_generic_opt_out_is_the_consent_change_it_means() -> None:
    [event] = normalize("object.propertyChange.hs_email_optout.json")
    assert event.type == "subscriber.consent_changed"
    assert event.providertype == "object.propertyChange"
    assert event.subject == "4051"
    assert event.data["consent"] == {"channel": "email", "state": "unsubscribed", "provider_state": "true",
                                     "property": "hs_email_optout"}
    assert event.data["subscriber"] == {"external_ids": {"hubspot": "4051"}}


def test_generic_and_legacy_contact_events_read_alike() -> None:
    for action, legacy in [("deletion", "subscriber.deleted"), ("privacyDeletion", "subscriber.redact_requested"),
                           ("merge", "subscriber.merged")]:
        [generic] = normalize(f"object.{action}.json")
        [old] = normalize(f"contact.{action}.json")
        assert generic.type == old.type == legacy
        assert generic.data["subscriber"] == old.data["subscriber"]
        assert {k: v for k, v in generic.data.items() if k != "meta"} == \
               {k: v for k, v in old.data.items() if k != "meta"}


def test_the_contact_time_zone_property_becomes_an_iana_zone() -> None:
    [event] = normalize("object.propertyChange.hs_timezone.json")
    assert event.type == "subscriber.updated"
    assert event.data["subscriber"] == {"timezone": "America/New_York", "external_ids": {"hubspot": "4051"}}
    assert [iana_zone(v) for v in ("america_slash_port_hyphen_au_hyphen_prince", "Europe/Paris", "mars_slash_base",
                                   "")] == ["America/Port-au-Prince", "Europe/Paris", None, None]


def test_a_generic_batch_gives_contacts_their_events_and_keeps_other_objects_visible() -> None:
    lifecycle, created, deal, company = normalize("object.batch.json")
    assert (created.type, lifecycle.type) == ("subscriber.created", "subscriber.updated")
    assert lifecycle.data["subscriber"] == {"lifecycle_stage": "customer", "external_ids": {"hubspot": "5001"}}
    for other, type_id in [(deal, "0-3"), (company, "0-2")]:
        assert other.type == "provider.unmapped"
        assert other.data["raw"]["objectTypeId"] == type_id
    assert (deal.providertype, company.providertype) == ("object.creation", "object.propertyChange")


def test_hub_normalize_cli_reads_the_generic_format() -> None:
    result = CliRunner().invoke(cli, ["normalize", "hubspot", str(HUBSPOT / "object.batch.json")])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [(e["type"], e["providertype"], e["subject"]) for e in events] == [
        ("subscriber.updated", "object.propertyChange", "5001"),
        ("subscriber.created", "object.creation", "5001"),
        ("provider.unmapped", "object.creation", None),
        ("provider.unmapped", "object.propertyChange", None),
    ]


# -- through a running hub ---------------------------------------------------------------------------
def _client(make_hub: Any) -> tuple[Any, Any]:
    from hub.web import create_app

    hub = make_hub(HUB_HUBSPOT_CLIENT_SECRET="cs")
    return hub, create_app(hub).test_client()


def test_generic_batches_through_the_pipeline_with_v2_signatures(make_hub: Any) -> None:
    hub, client = _client(make_hub)
    body = (HUBSPOT / "object.batch.json").read_bytes()
    headers = {"Content-Type": "application/json", **v2_headers(body, "cs", "http://localhost/webhooks/hubspot")}
    assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
    forged = {**headers, "X-HubSpot-Signature": "0" * 64}
    assert client.post("/webhooks/hubspot", data=body, headers=forged).status_code == 401
    drain(hub)
    assert count(hub, Delivery) == 1
    recorded = sorted(e.type for e in rows(hub, Event, Event.origin == "provider"))
    assert recorded == ["provider.unmapped", "provider.unmapped", "subscriber.created", "subscriber.updated"]
    assert [(x.provider, x.external_id) for x in rows(hub, ExternalId)] == [("hubspot", "5001")]


def test_the_time_zone_stays_when_a_later_event_has_none(make_hub: Any) -> None:
    hub, client = _client(make_hub)
    for name in ("object.creation.json", "object.propertyChange.hs_timezone.json",
                 "object.propertyChange.hs_email_optout.json"):
        body = (HUBSPOT / name).read_bytes()
        headers = {"Content-Type": "application/json", **v3_headers(body, "cs", "http://localhost/webhooks/hubspot")}
        assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
        drain(hub)
    [subscriber] = rows(hub, Subscriber)
    assert subscriber.timezone == "America/New_York"


def _post_hubspot(client: Any, elements: list[dict[str, Any]]) -> None:
    body = json.dumps(elements).encode()
    headers = {"Content-Type": "application/json", **v3_headers(body, "cs", "http://localhost/webhooks/hubspot")}
    assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200


def test_an_opt_out_made_in_hubspot_stops_the_marketing_rules(make_hub: Any) -> None:
    from sqlalchemy import select

    from hub.ingest.pipeline import record_events
    from hub.store import Action
    from tests.rules.events import event, subscription

    hub, client = _client(make_hub)
    cancelled = event("subscription.cancelled", "2026-01-01T10:00:00Z",
                      subscription=subscription(status="cancelled"))
    with hub.store.session() as s:
        record_events(hub, s, [cancelled], origin="import", now=datetime(2026, 1, 1, 10, tzinfo=timezone.utc))
    with hub.store.session() as s:
        assert sorted(s.execute(select(Action.step, Action.status).where(Action.rule_id == "win-back")).all()) == [
            ("30d", "scheduled"), ("7d", "scheduled")]
    # the HubSpot contact is the same person (its e-mail), then opts out of all e-mail
    [email_change] = json.loads((HUBSPOT / "object.propertyChange.hs_email_optout.json").read_bytes())
    email_change.update(eventId=3100, propertyName="email", propertyValue="Ann@Example.com")
    _post_hubspot(client, [email_change])
    drain(hub)
    _post_hubspot(client, json.loads((HUBSPOT / "object.propertyChange.hs_email_optout.json").read_bytes()))
    drain(hub)
    [subscriber] = rows(hub, Subscriber)
    assert subscriber.consent == {"email": "unsubscribed"}
    with hub.store.session() as s:
        assert sorted(s.execute(select(Action.step, Action.status).where(Action.rule_id == "win-back")).all()) == [
            ("30d", "cancelled"), ("7d", "cancelled")]
    # and nothing new is planned for that subscriber: a later cancellation plans no win-back
    again = event("subscription.cancelled", "2026-02-01T10:00:00Z",
                  subscription=subscription("sub_2", status="cancelled"))
    with hub.store.session() as s:
        record_events(hub, s, [again], origin="import", now=datetime(2026, 2, 1, 10, tzinfo=timezone.utc))
    with hub.store.session() as s:
        assert s.execute(select(Action.id).where(Action.rule_id == "win-back", Action.status == "scheduled")).all() == []
