"""ActiveCampaign actions: exact requests (providers.md §6.2) and what each answer means."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
import responses
from responses import matchers

from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from tests.connectors.actions import TIMEOUT, ActionContract, ctx, run, settings

API = "https://acme.api-us1.com"
TRACK = "https://track.test/event"
CONFIG = dict(HUB_ACTIVECAMPAIGN_API_TOKEN="ac-secret-token", HUB_ACTIVECAMPAIGN_API_URL=API,
              HUB_ACTIVECAMPAIGN_TRACK_URL=TRACK, HUB_ACTIVECAMPAIGN_ACCOUNT_ID="123456",
              HUB_ACTIVECAMPAIGN_EVENT_KEY="event-secret-key")


def body(call: responses.Call) -> dict:
    assert call.request.headers["Api-Token"] == "ac-secret-token"
    assert call.request.headers["Content-Type"] == "application/json"
    return json.loads(call.request.body)


def lookup_contact(contacts: list[dict]) -> None:
    responses.get(f"{API}/api/3/contacts", json={"contacts": contacts},
                  match=[matchers.query_param_matcher({"email": "ann@example.com"})])


@responses.activate
def test_sync_contact_upserts_by_email_with_names_and_fields():
    responses.post(f"{API}/api/3/contact/sync", status=201, json={"contact": {"id": "42"}})
    outcome = run("activecampaign.sync_contact", {"first_name": "Ann", "field_values": [
        {"field": "1", "value": "pro"}, {"field": "7", "value": ["a", "b"]}]},
        settings(**CONFIG), ctx(email="ann@example.com", last_name="Lee", phone=None))
    call = responses.calls[0]
    assert (call.request.method, call.request.url) == ("POST", f"{API}/api/3/contact/sync")
    assert body(call) == {"contact": {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee",
                                      "fieldValues": [{"field": "1", "value": "pro"},
                                                      {"field": "7", "value": "||a||b||"}]}}
    assert outcome.extra["contact_id"] == "42"
    assert outcome.request["headers"]["Api-Token"] == "***"  # never stored


@responses.activate
def test_add_tag_looks_up_contact_and_tag_then_links_them_with_integer_ids():
    lookup_contact([{"id": "42", "email": "ann@example.com"}])
    responses.get(f"{API}/api/3/tags", json={"tags": [{"id": "9", "tag": "vip-plus"}, {"id": "20", "tag": "VIP"}]},
                  match=[matchers.query_param_matcher({"search": "vip"})])
    responses.post(f"{API}/api/3/contactTags", status=201, json={"contactTag": {"id": "500"}})
    run("activecampaign.add_tag", {"tag": "vip"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert body(responses.calls[2]) == {"contactTag": {"contact": 42, "tag": 20}}
    # the ids are cached: a second tagging makes one call
    run("activecampaign.add_tag", {"tag": "vip"}, settings(**CONFIG), ctx(email="ann@example.com"))
    assert len(responses.calls) == 4 and responses.calls[3].request.url == f"{API}/api/3/contactTags"


@responses.activate
def test_add_tag_creates_a_missing_contact_and_tag():
    lookup_contact([])
    responses.post(f"{API}/api/3/contact/sync", status=201, json={"contact": {"id": "43"}})
    responses.get(f"{API}/api/3/tags", json={"tags": []})
    responses.post(f"{API}/api/3/tags", status=201, json={"tag": {"id": "21", "tag": "trial"}})
    responses.post(f"{API}/api/3/contactTags", status=201, json={})
    run("activecampaign.add_tag", {"tag": "trial", "email": "ann@example.com"}, settings(**CONFIG))
    assert body(responses.calls[1]) == {"contact": {"email": "ann@example.com"}}
    assert body(responses.calls[3]) == {"tag": {"tag": "trial", "tagType": "contact", "description": ""}}
    assert body(responses.calls[4]) == {"contactTag": {"contact": 43, "tag": 21}}


@responses.activate
def test_remove_tag_deletes_the_contacts_link_and_is_done_when_absent():
    responses.get(f"{API}/api/3/tags", json={"tags": [{"id": "20", "tag": "vip"}]})
    responses.get(f"{API}/api/3/contacts/42/contactTags",
                  json={"contactTags": [{"id": "7", "tag": "3"}, {"id": "8", "tag": "20"}]})
    responses.delete(f"{API}/api/3/contactTags/8", status=200, json={})
    run("activecampaign.remove_tag", {"tag": "vip", "contact_id": "42"}, settings(**CONFIG))
    assert [(c.request.method, c.request.url) for c in responses.calls][-1] == (
        "DELETE", f"{API}/api/3/contactTags/8")
    assert responses.calls[-1].request.headers["Api-Token"] == "ac-secret-token"


@responses.activate
def test_remove_tag_of_a_contact_without_it_sends_no_delete():
    # the contact id comes from the subscriber's stored ActiveCampaign id
    responses.get(f"{API}/api/3/tags", json={"tags": [{"id": "20", "tag": "vip"}]})
    responses.get(f"{API}/api/3/contacts/99/contactTags", json={"contactTags": [{"id": "7", "tag": "3"}]})
    outcome = run("activecampaign.remove_tag", {"tag": "vip"}, settings(**CONFIG), ctx(external_id="99"))
    assert outcome.request == {"skipped": "the contact does not have the tag"}
    assert [c.request.method for c in responses.calls] == ["GET", "GET"]


@pytest.mark.parametrize("action,status", [("subscribe_list", "1"), ("unsubscribe_list", "2")])
@responses.activate
def test_list_status_posts_contact_lists(action, status):
    responses.post(f"{API}/api/3/contactLists", status=201, json={})
    run(f"activecampaign.{action}", {"list": "3", "contact_id": "42"}, settings(**CONFIG))
    call = responses.calls[0]
    assert (call.request.method, call.request.url) == ("POST", f"{API}/api/3/contactLists")
    assert body(call) == {"contactList": {"list": "3", "contact": "42", "status": status}}


@responses.activate
def test_set_field_posts_a_field_value_without_defaults():
    responses.post(f"{API}/api/3/fieldValues", status=200, json={})
    run("activecampaign.set_field", {"field": "1", "value": "pro", "contact_id": "42"}, settings(**CONFIG))
    assert body(responses.calls[0]) == {"fieldValue": {"contact": "42", "field": "1", "value": "pro"},
                                        "useDefaults": False}


@responses.activate
def test_track_event_is_form_encoded_with_actid_and_key_and_no_api_token():
    responses.post(TRACK, json={"success": 1, "message": "Event spawned"})
    outcome = run("activecampaign.track_event", {"event": "renewal_due", "eventdata": {"days": 7}},
                  settings(**CONFIG), ctx(email="ann@example.com"))
    request = responses.calls[0].request
    assert request.url == TRACK and request.method == "POST"
    assert "Api-Token" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body) == {"actid": ["123456"], "key": ["event-secret-key"], "event": ["renewal_due"],
                                      "eventdata": ['{"days":7}'], "visit": ['{"email":"ann@example.com"}']}
    assert outcome.request["body"]["key"] == "***"  # the event key is a secret: masked when stored


@responses.activate
def test_track_event_refused_in_a_200_is_permanent():
    responses.post(TRACK, json={"success": 0, "message": "Event tracking is disabled"})
    with pytest.raises(PermanentError, match="disabled"):
        run("activecampaign.track_event", {"event": "x"}, settings(**CONFIG), ctx(email="ann@example.com"))


def test_event_names_longer_than_32_characters_are_refused_by_the_schema():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        run("activecampaign.track_event", {"event": "x" * 33}, settings(**CONFIG))


def test_dry_run_records_the_request_with_placeholders():
    outcome = run("activecampaign.add_tag", {"tag": "vip"}, settings(HUB_ACTIVECAMPAIGN_API_URL=API),
                  ctx(email="ann@example.com"))
    assert outcome.dry_run
    assert outcome.request["body"] == {"contactTag": {"contact": "<contact ann@example.com>", "tag": "<tag vip>"}}


class TestActiveCampaignActions(ActionContract):
    connector, api, secret = "activecampaign", API, "ac-secret-token"
    config = CONFIG
    dry_config = dict(HUB_ACTIVECAMPAIGN_API_URL=API, HUB_ACTIVECAMPAIGN_TRACK_URL=TRACK,
                      HUB_ACTIVECAMPAIGN_ACCOUNT_ID="123456")
    cases = [  # (action, params, method and path of the first request)
        ("activecampaign.sync_contact", {"email": "ann@example.com"}, "POST", "/api/3/contact/sync"),
        ("activecampaign.add_tag", {"tag": "vip", "contact_id": "42"}, "GET", "/api/3/tags"),
        ("activecampaign.remove_tag", {"tag": "vip", "contact_id": "42"}, "GET", "/api/3/tags"),
        ("activecampaign.subscribe_list", {"list": "3", "contact_id": "42"}, "POST", "/api/3/contactLists"),
        ("activecampaign.unsubscribe_list", {"list": "3", "contact_id": "42"}, "POST", "/api/3/contactLists"),
        ("activecampaign.set_field", {"field": "7", "value": "x", "contact_id": "42"}, "POST", "/api/3/fieldValues"),
        ("activecampaign.track_event", {"event": "e", "email": "ann@example.com"}, "POST", TRACK),
    ]


@responses.activate
def test_success_statuses_are_done():
    for status in (200, 201, 202, 204):
        responses.post(f"{API}/api/3/contactLists", status=status)
        assert run("activecampaign.subscribe_list", {"list": "3", "contact_id": "42"},
                   settings(**CONFIG)).status_code == status
        responses.reset()


@responses.activate
def test_timeout_is_retriable():
    responses.post(f"{API}/api/3/contactLists", body=TIMEOUT)
    with pytest.raises(RetriableError, match="timed out"):
        run("activecampaign.subscribe_list", {"list": "3", "contact_id": "42"}, settings(**CONFIG))


@responses.activate
def test_check_reads_the_current_user():
    import connectors

    connector = connectors.get("activecampaign")
    responses.get(f"{API}/api/3/users/me", status=200, json={"user": {"id": "1"}})
    assert connector.check(connector.client(settings(**CONFIG))).status_code == 200
    assert responses.calls[0].request.headers["Api-Token"] == "ac-secret-token"
    responses.replace(responses.GET, f"{API}/api/3/users/me", status=401)
    with pytest.raises(CredentialsError):
        connector.check(connector.client(settings(**CONFIG)))
