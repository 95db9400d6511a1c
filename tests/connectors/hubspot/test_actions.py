"""HubSpot actions: exact requests (providers.md §4.4), 207 partial failures, id resolution."""

from __future__ import annotations

import json
import uuid

import pytest
import responses
from responses import matchers

from connectors import REGISTRY
from connectors.hubspot import client as hubspot
from hub.kernel.errors import PermanentError, RetriableError
from tests.connectors.actions import (
    KEY,
    ActionContract,
    ctx,
    run,
    run_batch,
    settings,
)

API = "https://hubspot.test"
CONFIG = dict(HUB_HUBSPOT_ACCESS_TOKEN="pat-na1-secret", HUB_HUBSPOT_API_URL=API)


def sent(call: responses.Call) -> object:
    assert call.request.headers["Authorization"] == "Bearer pat-na1-secret"
    assert call.request.headers["Content-Type"] == "application/json"
    return json.loads(call.request.body)


def upsert_result(record_id: str, email: str) -> dict:
    return {"id": record_id, "new": False, "properties": {"email": email}, "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "archived": False}


@responses.activate
def test_upsert_contact_is_a_batch_upsert_by_email_with_string_values():
    responses.post(f"{API}/crm/v3/objects/contacts/batch/upsert",
                   json={"status": "COMPLETE", "results": [upsert_result("901", "ann@example.com")]})
    run("hubspot.upsert_contact", {"properties": {"plan": "pro", "seats": 3, "vip": True, "coupon": None}},
        settings(**CONFIG), ctx(email="ann@example.com"))
    assert sent(responses.calls[0]) == {"inputs": [{
        "id": "ann@example.com", "idProperty": "email", "objectWriteTraceId": KEY,
        "properties": {"plan": "pro", "seats": "3", "vip": "true", "coupon": ""}}]}


@responses.activate
def test_a_207_fails_only_the_inputs_hubspot_names():
    responses.post(f"{API}/crm/v3/objects/contacts/batch/upsert", status=207, json={
        "status": "COMPLETE", "numErrors": 1,
        "results": [upsert_result("1", "a@example.com"), upsert_result("3", "c@example.com")],
        "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
                    "context": {"objectWriteTraceId": ["k-b"]}}]})
    items = [({"email": f"{x}@example.com"}, ctx(f"k-{x}")) for x in "abc"]
    outcome, results = run_batch("hubspot.upsert_contact", items, settings(**CONFIG))
    assert outcome.status_code == 207 and len(responses.calls) == 1
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, PermanentError) and "VALIDATION_ERROR" in str(results[1].error)
    assert [i["objectWriteTraceId"] for i in sent(responses.calls[0])["inputs"]] == ["k-a", "k-b", "k-c"]


@responses.activate
def test_a_207_error_naming_the_email_fails_that_input():
    responses.post(f"{API}/crm/v3/objects/contacts/batch/upsert", status=207, json={
        "status": "COMPLETE", "results": [upsert_result("1", "a@example.com")],
        "errors": [{"status": "error", "category": "CONFLICT", "message": "duplicate",
                    "context": {"ids": ["B@example.com"]}}]})
    items = [({"email": f"{x}@example.com"}, ctx(f"k-{x}")) for x in "ab"]
    _, results = run_batch("hubspot.upsert_contact", items, settings(**CONFIG))
    assert [r.ok for r in results] == [True, False]


def test_upsert_batches_hold_at_most_100_contacts():
    assert REGISTRY["hubspot"].actions["upsert_contact"].batch.max_items == 100


@responses.activate
def test_send_event_uses_the_action_key_as_uuid():
    responses.post(f"{API}/events/v3/send", status=204)
    run("hubspot.send_event", {"event_name": "pe4242_plan_renewed", "occurred_at": "2026-01-01T00:00:00Z",
                               "properties": {"plan": "pro", "amount": 29}}, settings(**CONFIG),
        ctx(email="ann@example.com"))
    assert sent(responses.calls[0]) == {"eventName": "pe4242_plan_renewed", "uuid": KEY, "email": "ann@example.com",
                                        "occurredAt": "2026-01-01T00:00:00Z",
                                        "properties": {"plan": "pro", "amount": "29"}}


@responses.activate
def test_send_event_with_a_key_that_is_not_a_uuid_sends_a_stable_uuid():
    responses.post(f"{API}/events/v3/send", status=204)
    for _ in range(2):
        run("hubspot.send_event", {"event_name": "pe1_x", "object_id": "901"}, settings(**CONFIG), ctx("manual-1"))
    first, second = (sent(c) for c in responses.calls)
    assert first["uuid"] == second["uuid"] and uuid.UUID(first["uuid"])
    assert first["objectId"] == "901" and "email" not in first


@responses.activate
def test_send_event_batch_is_one_call():
    responses.post(f"{API}/events/v3/send/batch", status=204)
    items = [({"event_name": "pe1_x", "email": f"{x}@example.com"}, ctx(f"k-{x}")) for x in "ab"]
    _, results = run_batch("hubspot.send_event", items, settings(**CONFIG))
    assert all(r.ok for r in results)
    body = sent(responses.calls[0])
    assert [(i["email"], i["uuid"]) for i in body["inputs"]] == [
        ("a@example.com", hubspot.event_uuid("k-a")), ("b@example.com", hubspot.event_uuid("k-b"))]


@responses.activate
def test_add_to_list_resolves_the_record_id_by_email_once():
    lookup = responses.get(f"{API}/crm/v3/objects/contacts/ann@example.com",
                           match=[matchers.query_param_matcher({"idProperty": "email"})],
                           json={"id": "901", "properties": {"email": "ann@example.com"}})
    add = responses.put(f"{API}/crm/v3/lists/77/memberships/add",
                        json={"recordsIdsAdded": ["901"], "recordIdsRemoved": [], "recordIdsMissing": []})
    for _ in range(2):
        run("hubspot.add_to_list", {"list_id": "77"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert lookup.call_count == 1 and add.call_count == 2
    assert sent(add.calls[0]) == ["901"]


@responses.activate
def test_add_to_list_uses_the_record_id_from_the_upsert():
    responses.post(f"{API}/crm/v3/objects/contacts/batch/upsert",
                   json={"status": "COMPLETE", "results": [upsert_result("555", "ann@example.com")]})
    add = responses.put(f"{API}/crm/v3/lists/77/memberships/add", json={"recordsIdsAdded": ["555"]})
    run("hubspot.upsert_contact", {"email": "ann@example.com"}, settings(**CONFIG))
    run("hubspot.add_to_list", {"list_id": "77", "email": "ann@example.com"}, settings(**CONFIG))
    assert len(responses.calls) == 2 and sent(add.calls[0]) == ["555"]


@responses.activate
def test_a_contact_not_created_yet_is_retried_later():
    responses.get(f"{API}/crm/v3/objects/contacts/ann@example.com", status=404,
                  json={"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"})
    with pytest.raises(RetriableError, match="upsert_contact"):
        run("hubspot.add_to_list", {"list_id": "77"}, settings(**CONFIG), ctx(email="ann@example.com"))


@responses.activate
def test_remove_from_list_batch_fails_the_ids_hubspot_reports_missing():
    remove = responses.put(f"{API}/crm/v3/lists/77/memberships/remove",
                           json={"recordsIdsAdded": [], "recordIdsRemoved": ["1"], "recordIdsMissing": ["2"]})
    items = [({"list_id": "77", "record_id": r}, ctx(f"k{r}")) for r in ("1", "2")]
    _, results = run_batch("hubspot.remove_from_list", items, settings(**CONFIG))
    assert sent(remove.calls[0]) == ["1", "2"]
    assert [r.ok for r in results] == [True, False]


@responses.activate
def test_set_properties_patches_the_contact_by_email():
    patch = responses.patch(f"{API}/crm/v3/objects/contacts/ann+test@example.com".replace("+", "%2B"),
                            match=[matchers.query_param_matcher({"idProperty": "email"})],
                            json={"id": "901", "properties": {}})
    run("hubspot.set_properties", {"email": "ann+test@example.com", "properties": {"plan": "pro", "coupon": None}},
        settings(**CONFIG))
    assert sent(patch.calls[0]) == {"properties": {"plan": "pro", "coupon": ""}}


def test_rate_limit_is_100_per_10_seconds_unless_configured_190():
    hub_spot = REGISTRY["hubspot"]
    assert hub_spot.rate_limits_for(settings()) == {"default": ((100, 10.0),)}
    assert hub_spot.rate_limits_for(settings(HUB_HUBSPOT_RATE_LIMIT=190)) == {"default": ((190, 10.0),)}


class TestHubSpotActions(ActionContract):
    connector, api, secret = "hubspot", API, "pat-na1-secret"
    config, dry_config = CONFIG, dict(HUB_HUBSPOT_API_URL=API)
    cases = [
        ("hubspot.upsert_contact", {"email": "a@example.com"}, "POST", "/crm/v3/objects/contacts/batch/upsert"),
        ("hubspot.send_event", {"event_name": "pe1_x", "email": "a@example.com"}, "POST", "/events/v3/send"),
        ("hubspot.add_to_list", {"list_id": "7", "record_id": "1"}, "PUT", "/crm/v3/lists/7/memberships/add"),
        ("hubspot.remove_from_list", {"list_id": "7", "record_id": "1"}, "PUT", "/crm/v3/lists/7/memberships/remove"),
        ("hubspot.set_properties", {"email": "a@example.com", "properties": {"x": "1"}}, "PATCH",
         "/crm/v3/objects/contacts/a@example.com"),
    ]
    error_body = {"status": "error", "message": "m", "category": "C", "correlationId": "c"}

    def expected_error(self, action: str, status: int, error: type) -> type:
        if action == "hubspot.set_properties" and status == 404:
            return RetriableError  # the contact may be created by an upsert still queued
        return error


@responses.activate
def test_without_a_token_nothing_is_sent_and_the_exact_request_is_recorded():
    outcome = run("hubspot.upsert_contact", {"properties": {"plan": "pro"}}, settings(HUB_HUBSPOT_API_URL=API),
                  ctx(email="ann@example.com"))
    assert len(responses.calls) == 0 and outcome.dry_run
    assert outcome.request == {
        "method": "POST", "url": f"{API}/crm/v3/objects/contacts/batch/upsert",
        "headers": {"Authorization": "***", "Accept": "application/json", "Content-Type": "application/json"},
        "body": {"inputs": [{"id": "ann@example.com", "idProperty": "email", "objectWriteTraceId": KEY,
                             "properties": {"plan": "pro"}}]}}
