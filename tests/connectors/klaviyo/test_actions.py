"""Klaviyo actions: exact requests (providers.md §5.2) and what each answer means."""

from __future__ import annotations

import json

import pytest
import responses
from responses import matchers

from connectors.klaviyo import client as klaviyo
from hub.kernel.errors import PermanentError
from tests.connectors.actions import (
    KEY,
    ActionContract,
    ctx,
    run,
    run_batch,
    settings,
)

API = "https://klaviyo.test"
CONFIG = dict(HUB_KLAVIYO_API_KEY="pk_live_secret", HUB_KLAVIYO_API_URL=API)
HEADERS = {"Authorization": "Klaviyo-API-Key pk_live_secret", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"}
PROFILE_LOOKUP = {"filter": 'equals(email,"ann@example.com")', "fields[profile]": "email,phone_number,external_id"}


def sent(call: responses.Call) -> dict:
    for name, value in HEADERS.items():
        assert call.request.headers[name] == value, name
    return json.loads(call.request.body)


@responses.activate
def test_track_event_sends_value_in_major_units_and_the_key_as_unique_id():
    responses.post(f"{API}/api/events", status=202)
    run("klaviyo.track_event", {"metric": "Payment Failed", "value": {"minor": 2900, "currency": "usd"},
                                "properties": {"attempt": 2}, "time": "2026-01-01T00:00:00Z"},
        settings(**CONFIG), ctx(email="ann@example.com"))
    assert sent(responses.calls[0]) == {"data": {"type": "event", "attributes": {
        "properties": {"attempt": 2},
        "metric": {"data": {"type": "metric", "attributes": {"name": "Payment Failed"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "ann@example.com"}}},
        "unique_id": KEY, "time": "2026-01-01T00:00:00Z", "value": 29.0, "value_currency": "USD"}}}


@responses.activate
def test_upsert_profile_sends_null_to_clear_and_leaves_omitted_fields_out():
    responses.post(f"{API}/api/profile-import", status=201,
                   json={"data": {"type": "profile", "id": "01KPROFILE", "attributes": {}}})
    outcome = run("klaviyo.upsert_profile", {"email": "ann@example.com", "first_name": "Ann", "last_name": None,
                                             "properties": {"plan": "pro", "coupon": None}}, settings(**CONFIG))
    assert outcome.status_code == 201
    assert responses.calls[0].request.method == "POST"
    assert sent(responses.calls[0]) == {"data": {"type": "profile", "attributes": {
        "email": "ann@example.com", "first_name": "Ann", "last_name": None,
        "properties": {"plan": "pro", "coupon": None}}}}


@responses.activate
def test_upsert_profile_falls_back_to_the_subscribers_identifiers():
    responses.post(f"{API}/api/profile-import", status=200, json={"data": {"type": "profile", "id": "01K"}})
    run("klaviyo.upsert_profile", {"first_name": "Ann"}, settings(**CONFIG),
        ctx(email="ann@example.com", phone="+15550100"))
    assert sent(responses.calls[0])["data"]["attributes"] == {
        "first_name": "Ann", "email": "ann@example.com", "phone_number": "+15550100"}


def test_upsert_profile_without_any_identifier_is_permanent():
    with pytest.raises(PermanentError, match="email, phone number or external id"):
        run("klaviyo.upsert_profile", {"first_name": "Ann"}, settings(**CONFIG), ctx())


@responses.activate
def test_subscribe_records_consent_per_channel_into_a_list():
    responses.post(f"{API}/api/profile-subscription-bulk-create-jobs", status=202)
    run("klaviyo.subscribe", {"list_id": "Xy12Ab", "channels": ["email", "sms"]}, settings(**CONFIG),
        ctx(email="ann@example.com", phone="+15550100"))
    assert sent(responses.calls[0]) == {"data": {
        "type": "profile-subscription-bulk-create-job",
        "attributes": {"custom_source": "subscriber-hub", "historical_import": False, "profiles": {"data": [
            {"type": "profile", "attributes": {
                "email": "ann@example.com", "phone_number": "+15550100",
                "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}},
                                  "sms": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "Xy12Ab"}}}}}


@responses.activate
def test_subscribe_batch_is_one_job_and_a_profile_missing_its_phone_fails_alone():
    responses.post(f"{API}/api/profile-subscription-bulk-create-jobs", status=202)
    items = [({"list_id": "L1", "channels": ["sms"], "profile": {"phone_number": "+1555010" + str(i)}}, ctx(f"k{i}"))
             for i in range(3)]
    items.insert(1, ({"list_id": "L1", "channels": ["sms"], "profile": {"email": "no-phone@example.com"}}, ctx("bad")))
    outcome, results = run_batch("klaviyo.subscribe", items, settings(**CONFIG))
    assert len(responses.calls) == 1 and outcome.status_code == 202
    profiles = sent(responses.calls[0])["data"]["attributes"]["profiles"]["data"]
    assert [p["attributes"]["phone_number"] for p in profiles] == ["+15550100", "+15550101", "+15550102"]
    assert [r.ok for r in results] == [True, False, True, True]
    assert isinstance(results[1].error, PermanentError) and "phone_number" in str(results[1].error)


def test_subscribe_batches_group_by_list_and_channels():
    spec = klaviyo.ACTIONS["subscribe"].batch
    assert spec is not None and spec.max_items == 1000
    assert spec.group({"list_id": "L1", "channels": ["sms", "email"]}) == spec.group(
        {"list_id": "L1", "channels": ["email", "sms"]})
    assert spec.group({"list_id": "L1", "channels": ["email"]}) != spec.group({"list_id": "L2", "channels": ["email"]})
    assert spec.group({"list_id": "L1", "channels": ["email"]}) != spec.group({"list_id": "L1", "channels": ["sms"]})


@responses.activate
def test_add_to_list_looks_the_profile_up_by_email_once_then_uses_the_cache():
    lookup = responses.get(f"{API}/api/profiles", match=[matchers.query_param_matcher(PROFILE_LOOKUP)],
                           json={"data": [{"type": "profile", "id": "01KANN"}]})
    add = responses.post(f"{API}/api/lists/L1/relationships/profiles", status=204)
    for _ in range(2):
        run("klaviyo.add_to_list", {"list_id": "L1"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert lookup.call_count == 1 and add.call_count == 2
    assert sent(add.calls[0]) == {"data": [{"type": "profile", "id": "01KANN"}]}


@responses.activate
def test_add_to_list_uses_the_id_returned_by_upsert_profile():
    responses.post(f"{API}/api/profile-import", status=201, json={"data": {"type": "profile", "id": "01KNEW"}})
    add = responses.post(f"{API}/api/lists/L1/relationships/profiles", status=204)
    run("klaviyo.upsert_profile", {"email": "Ann@Example.com"}, settings(**CONFIG))
    run("klaviyo.add_to_list", {"list_id": "L1", "profile": {"email": "ann@example.com"}}, settings(**CONFIG))
    assert [c.request.method for c in responses.calls] == ["POST", "POST"]
    assert sent(add.calls[0]) == {"data": [{"type": "profile", "id": "01KNEW"}]}


@responses.activate
def test_add_to_list_creates_a_profile_klaviyo_does_not_know_yet():
    responses.get(f"{API}/api/profiles", json={"data": []})
    create = responses.post(f"{API}/api/profile-import", status=201, json={"data": {"type": "profile", "id": "01KC"}})
    add = responses.post(f"{API}/api/lists/L1/relationships/profiles", status=204)
    run("klaviyo.add_to_list", {"list_id": "L1"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert sent(create.calls[0]) == {"data": {"type": "profile", "attributes": {"email": "ann@example.com"}}}
    assert sent(add.calls[0]) == {"data": [{"type": "profile", "id": "01KC"}]}


@responses.activate
def test_remove_from_list_deletes_the_relationship():
    remove = responses.delete(f"{API}/api/lists/L1/relationships/profiles", status=204)
    run("klaviyo.remove_from_list", {"list_id": "L1", "profile": {"id": "01KANN"}}, settings(**CONFIG))
    assert sent(remove.calls[0]) == {"data": [{"type": "profile", "id": "01KANN"}]}


@responses.activate
def test_remove_from_list_of_an_unknown_profile_sends_nothing_and_succeeds():
    responses.get(f"{API}/api/profiles", json={"data": []})
    outcome = run("klaviyo.remove_from_list", {"list_id": "L1"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert [c.request.method for c in responses.calls] == ["GET"]
    assert outcome.status_code is None


@responses.activate
def test_list_batch_sends_every_profile_in_one_call():
    add = responses.post(f"{API}/api/lists/L1/relationships/profiles", status=204)
    items = [({"list_id": "L1", "profile": {"id": f"01K{i}"}}, ctx(f"k{i}")) for i in range(3)]
    _, results = run_batch("klaviyo.add_to_list", items, settings(**CONFIG))
    assert add.call_count == 1 and all(r.ok for r in results)
    assert sent(add.calls[0]) == {"data": [{"type": "profile", "id": f"01K{i}"} for i in range(3)]}
    assert klaviyo.ACTIONS["add_to_list"].batch.max_items == 1000


def test_buckets_follow_klaviyo_endpoint_tiers():
    from connectors import REGISTRY

    limits, actions = REGISTRY["klaviyo"].rate_limits, REGISTRY["klaviyo"].actions
    assert {name: limits[a.bucket] for name, a in actions.items()} == {  # burst and steady windows
        "track_event": ((350, 1.0), (3500, 60.0)), "upsert_profile": ((75, 1.0), (750, 60.0)),
        "subscribe": ((75, 1.0), (750, 60.0)), "add_to_list": ((10, 1.0), (150, 60.0)),
        "remove_from_list": ((10, 1.0), (150, 60.0))}


class TestKlaviyoActions(ActionContract):
    connector, api, secret = "klaviyo", API, "pk_live_secret"
    config, dry_config = CONFIG, dict(HUB_KLAVIYO_API_URL=API)
    cases = [
        ("klaviyo.track_event", {"metric": "M", "profile": {"email": "a@example.com"}}, "POST", "/api/events"),
        ("klaviyo.upsert_profile", {"email": "a@example.com"}, "POST", "/api/profile-import"),
        ("klaviyo.subscribe", {"profile": {"email": "a@example.com"}}, "POST",
         "/api/profile-subscription-bulk-create-jobs"),
        ("klaviyo.add_to_list", {"list_id": "L1", "profile": {"id": "01K"}}, "POST",
         "/api/lists/L1/relationships/profiles"),
        ("klaviyo.remove_from_list", {"list_id": "L1", "profile": {"id": "01K"}}, "DELETE",
         "/api/lists/L1/relationships/profiles"),
    ]
    error_body = {"errors": [{"id": "e1", "status": 400, "code": "x", "title": "t", "detail": "d"}]}


@responses.activate
def test_without_an_api_key_nothing_is_sent_and_the_exact_request_is_recorded():
    outcome = run("klaviyo.subscribe", {"list_id": "L1"}, settings(HUB_KLAVIYO_API_URL=API),
                  ctx(email="ann@example.com"))
    assert len(responses.calls) == 0 and outcome.dry_run
    assert outcome.request["method"] == "POST"
    assert outcome.request["url"] == f"{API}/api/profile-subscription-bulk-create-jobs"
    assert outcome.request["headers"]["Authorization"] == "***"
    assert outcome.request["headers"]["revision"] == "2026-07-15"
    assert outcome.request["body"]["data"]["attributes"]["profiles"]["data"][0]["attributes"]["email"] == \
        "ann@example.com"


# -- identity: Klaviyo's profile id is the profile's id, the merchant's id is external_id -------------
def _as_delivered(**subscriber):
    """The subscriber as the sender hands it to the Klaviyo client (external_id: Klaviyo's own id)."""
    return ctx(**subscriber, external_id=(subscriber.get("external_ids") or {}).get("klaviyo"))


@responses.activate
def test_track_event_sends_klaviyos_profile_id_beside_the_attributes_and_the_merchants_id_as_external_id():
    responses.post(f"{API}/api/events", status=202)
    run("klaviyo.track_event", {"metric": "Win Back"}, settings(**CONFIG),
        _as_delivered(email="ann@example.com", external_ids={"klaviyo": "01KPROFILE", "merchant": "m-42",
                                                             "stripe": "cus_1"}))
    assert sent(responses.calls[0])["data"]["attributes"]["profile"] == {"data": {
        "type": "profile", "id": "01KPROFILE", "attributes": {"email": "ann@example.com", "external_id": "m-42"}}}


@responses.activate
def test_without_a_merchant_id_no_external_id_is_sent_and_an_explicit_profile_id_stays_outside_attributes():
    responses.post(f"{API}/api/events", status=202)
    run("klaviyo.track_event", {"metric": "Win Back"}, settings(**CONFIG),
        _as_delivered(email="ann@example.com", external_ids={"klaviyo": "01KPROFILE"}))
    run("klaviyo.track_event", {"metric": "Win Back", "profile": {"id": "01KOTHER", "email": "bo@example.com"}},
        settings(**CONFIG), ctx())
    first, second = (sent(c)["data"]["attributes"]["profile"]["data"] for c in responses.calls)
    assert first == {"type": "profile", "id": "01KPROFILE", "attributes": {"email": "ann@example.com"}}
    assert second == {"type": "profile", "id": "01KOTHER", "attributes": {"email": "bo@example.com"}}


@responses.activate
def test_upsert_profile_updates_klaviyos_profile_by_its_id_and_never_sends_it_as_external_id():
    responses.post(f"{API}/api/profile-import", status=200, json={"data": {"type": "profile", "id": "01KPROFILE"}})
    run("klaviyo.upsert_profile", {"first_name": "Ann"}, settings(**CONFIG),
        _as_delivered(email="ann@example.com", external_ids={"klaviyo": "01KPROFILE"}))
    assert sent(responses.calls[0]) == {"data": {"type": "profile", "id": "01KPROFILE", "attributes": {
        "first_name": "Ann", "email": "ann@example.com"}}}
