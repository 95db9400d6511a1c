"""``/api/subscriptions/<id>/changes``: one request shape for every provider, routed to the provider's
action, idempotent, visible; bad requests answered 400 naming the field."""

from __future__ import annotations

import json

import pytest
import responses

from hub.store import Action
from hub.web import create_app
from tests.changes.support import subscription
from tests.helpers import drain, rows

AUTH = {"Authorization": "Bearer admin-test-token"}


@pytest.mark.parametrize("provider,ref,change,expected", [
    ("stripe", "sub_1", {"change": "pause"}, ("stripe.pause_subscription", {"subscription_id": "sub_1"})),
    ("stripe", "sub_1", {"change": "cancel", "effective": "period_end", "reason": "too expensive"},
     ("stripe.cancel_subscription", {"subscription_id": "sub_1", "at_period_end": True, "comment": "too expensive"})),
    ("stripe", "sub_1", {"change": "change_plan", "plan": "price_pro", "plan_amount": 6000},
     ("stripe.change_subscription", {"subscription_id": "sub_1", "price": "price_pro", "at_period_end": False})),
    ("chargebee", "cb_1", {"change": "resume"}, ("chargebee.resume_subscription", {"subscription_id": "cb_1"})),
    ("chargebee", "cb_1", {"change": "change_quantity", "quantity": 4, "effective": "period_end"},
     ("chargebee.change_subscription", {"subscription_id": "cb_1", "quantity": 4, "current_item_price_id": "basic",
                                        "end_of_term": True})),
])
def test_a_change_becomes_the_providers_action(hub, client, provider, ref, change, expected):
    subscription(hub, provider, ref, plan="basic", amount=3000)
    answer = client.post(f"/api/subscriptions/{ref}/changes", json=change, headers=AUTH)
    assert answer.status_code == 201, answer.json
    assert (answer.json["action"], answer.json["params"]) == expected
    assert answer.json["change"] == change["change"] and answer.json["dry_run"] is True  # no API key set


def test_the_same_idempotency_key_is_one_change(hub, client):
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    body = {"change": "pause", "idempotency_key": "ticket-42"}
    first = client.post("/api/subscriptions/stripe:sub_1/changes", json=body, headers=AUTH)
    again = client.post("/api/subscriptions/sub_1/changes", json=body, headers=AUTH)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json["id"] == again.json["id"] and len(rows(hub, Action)) == 1


def test_a_preview_plans_nothing(hub, client):
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    answer = client.post("/api/subscriptions/sub_1/changes?preview=true",
                         json={"change": "change_quantity", "quantity": 2}, headers=AUTH)
    assert answer.status_code == 200 and answer.json["charge_per_period"]["after"] == 6000
    assert rows(hub, Action) == []


@responses.activate
def test_the_outcome_is_shown_once_the_provider_answered(make_hub):
    hub = make_hub(HUB_STRIPE_API_KEY="sk_test_x", HUB_STRIPE_API_URL="https://stripe.test")
    client = create_app(hub).test_client()
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    responses.post("https://stripe.test/v1/subscriptions/sub_1", json={"id": "sub_1"})
    made = client.post("/api/subscriptions/sub_1/changes", json={"change": "resume"}, headers=AUTH).json
    drain(hub)
    shown = client.get(f"/api/subscriptions/sub_1/changes/{made['id']}", headers=AUTH).json
    assert shown["status"] == "done" and shown["attempts"][-1]["outcome"] == "ok"
    assert responses.calls[0].request.body == "pause_collection="


@pytest.mark.parametrize("body,named", [
    ({"change": "explode"}, "change"),
    ({"change": "change_plan"}, "plan"),
    ({"change": "change_quantity", "quantity": 0}, "quantity"),
    ({"change": "pause", "effective": "tomorrow"}, "effective"),
    ({"change": "resume", "effective": "period_end"}, "effective"),
    (["pause"], "JSON object"),
])
def test_a_bad_request_is_a_400_naming_the_field(hub, client, body, named):
    subscription(hub, "stripe", "sub_1", plan="basic", amount=3000)
    answer = client.post("/api/subscriptions/sub_1/changes", json=body, headers=AUTH)
    assert answer.status_code == 400 and named in answer.json["message"]


def test_an_unknown_subscription_is_a_404(hub, client):
    answer = client.post("/api/subscriptions/sub_nope/changes", json={"change": "pause"}, headers=AUTH)
    assert answer.status_code == 404 and "sub_nope" in answer.json["message"]


@pytest.mark.parametrize("change,expected", [
    ({"change": "pause"}, ("shopify.pause_subscription", {"subscription_id": "24398905522"})),
    ({"change": "resume"}, ("shopify.resume_subscription", {"subscription_id": "24398905522"})),
    ({"change": "cancel", "effective": "2026-12-24"},
     ("shopify.cancel_subscription", {"subscription_id": "24398905522"})),
    ({"change": "change_plan", "plan": "gid://shopify/ProductVariant/222", "plan_amount": 5990},
     ("shopify.change_subscription", {"subscription_id": "24398905522", "variant_id": "gid://shopify/ProductVariant/222",
                                      "price": "59.90"})),
    ({"change": "change_quantity", "quantity": 3},
     ("shopify.change_subscription", {"subscription_id": "24398905522", "quantity": 3})),
])
def test_a_shopify_change_becomes_a_contract_action(hub, client, change, expected):
    subscription(hub, "shopify", "24398905522", plan="gid://shopify/ProductVariant/111", amount=2990)
    answer = client.post("/api/subscriptions/shopify:24398905522/changes", json=change, headers=AUTH)
    assert answer.status_code == 201, answer.json
    assert (answer.json["action"], answer.json["params"]) == expected
    if change.get("effective") == "2026-12-24":  # Shopify schedules nothing: the hub plans it for that day
        assert answer.json["due_at"].startswith("2026-12-24T00:00:00") and answer.json["status"] == "scheduled"


def test_a_value_the_provider_would_refuse_is_a_400_before_anything_is_planned(hub, client):
    subscription(hub, "shopify", "24398905522", plan="gid://shopify/ProductVariant/111", amount=2990)
    answer = client.post("/api/subscriptions/24398905522/changes",
                         json={"change": "change_plan", "plan": "price_pro", "plan_amount": 100}, headers=AUTH)
    assert answer.status_code == 400 and answer.json["message"].startswith("plan: a product variant id")
    assert rows(hub, Action) == []


@responses.activate
def test_a_shopify_pause_reaches_the_contract_and_a_user_error_is_a_clear_failure(make_hub):
    hub = make_hub(HUB_SHOPIFY_SHOP="tea-shop", HUB_SHOPIFY_ACCESS_TOKEN="shpat_x")
    client = create_app(hub).test_client()
    subscription(hub, "shopify", "24398905522", plan="gid://shopify/ProductVariant/111", amount=2990)
    answers = {  # by mutation: the contract pauses; a draft of it is refused (terminated)
        "subscriptionContractPause": {"contract": {"id": "gid://shopify/SubscriptionContract/24398905522",
                                                   "status": "PAUSED"}, "userErrors": []},
        "subscriptionContractUpdate": {"draft": None, "userErrors": [
            {"field": ["contractId"], "message": "Contract is cancelled", "code": "CONTRACT_TERMINATED"}]}}

    def graphql(request):
        mutation = next(m for m in answers if f"{m}(" in json.loads(request.body)["query"])
        return 200, {}, json.dumps({"data": {mutation: answers[mutation]}})

    responses.add_callback(responses.POST, "https://tea-shop.myshopify.com/admin/api/2026-01/graphql.json",
                           callback=graphql, content_type="application/json")
    paused = client.post("/api/subscriptions/24398905522/changes", json={"change": "pause"}, headers=AUTH).json
    refused = client.post("/api/subscriptions/24398905522/changes", json={"change": "change_quantity", "quantity": 2},
                          headers=AUTH).json
    drain(hub)
    assert client.get(f"/api/subscriptions/24398905522/changes/{paused['id']}", headers=AUTH).json["status"] == "done"
    shown = client.get(f"/api/subscriptions/24398905522/changes/{refused['id']}", headers=AUTH).json
    assert shown["status"] == "failed"
    assert "subscriptionContractUpdate refused: CONTRACT_TERMINATED: Contract is cancelled" in shown["last_error"]
