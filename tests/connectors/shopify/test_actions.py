"""Shopify billing actions: Admin GraphQL requests (subscriptionBillingAttemptCreate with the action
key as idempotencyKey, subscriptionContractPause, subscriptionContractActivate,
subscriptionContractCancel, and a plan or quantity change through subscriptionContractUpdate ->
subscriptionDraftLineUpdate -> subscriptionDraftCommit) and what each answer means, GraphQL errors,
userErrors and cost-based throttling included."""

from __future__ import annotations

import json

import pytest
import responses
from marshmallow import ValidationError

from connectors.shopify.client import API_VERSION
from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from tests.connectors.actions import (
    KEY,
    ActionContract,
    run,
    settings,
)

API = "https://tea-shop.myshopify.com"
GRAPHQL = f"{API}/admin/api/{API_VERSION}/graphql.json"
CONFIG = dict(HUB_SHOPIFY_SHOP="tea-shop", HUB_SHOPIFY_ACCESS_TOKEN="shpat_secret_token")
CONTRACT = "gid://shopify/SubscriptionContract/24398905522"
COST = {"requestedQueryCost": 10, "actualQueryCost": 10,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}


def sent(call: responses.Call) -> dict:
    assert call.request.headers["X-Shopify-Access-Token"] == "shpat_secret_token"
    assert call.request.headers["Content-Type"] == "application/json"
    return json.loads(call.request.body)


def answer(mutation: str, payload: dict) -> dict:
    return {"data": {mutation: payload}, "extensions": {"cost": COST}}


@responses.activate
def test_retry_payment_creates_a_billing_attempt_keyed_by_the_action():
    responses.post(GRAPHQL, json=answer("subscriptionBillingAttemptCreate", {
        "subscriptionBillingAttempt": {"id": "gid://shopify/SubscriptionBillingAttempt/1", "idempotencyKey": KEY},
        "userErrors": []}))
    outcome = run("shopify.retry_payment", {"subscription_id": "24398905522"}, settings(**CONFIG))
    assert outcome.status_code == 200
    assert "shpat_secret_token" not in json.dumps(outcome.request)  # the recorded request hides the token
    body = sent(responses.calls[0])
    assert body["variables"] == {"subscriptionContractId": CONTRACT,
                                 "subscriptionBillingAttemptInput": {"idempotencyKey": KEY}}
    assert body["query"].startswith("mutation subscriptionBillingAttemptCreate(")
    assert "subscriptionBillingAttemptCreate(subscriptionContractId: $subscriptionContractId," in body["query"]


@responses.activate
def test_retry_payment_on_a_chosen_cycle_with_an_origin_time_and_a_gid():
    responses.post(GRAPHQL, json=answer("subscriptionBillingAttemptCreate", {
        "subscriptionBillingAttempt": {"id": "gid://shopify/SubscriptionBillingAttempt/2"}, "userErrors": []}))
    run("shopify.retry_payment", {"subscription_id": CONTRACT, "billing_cycle_index": 3,
                                  "origin_time": "2026-03-01T10:00:00Z"}, settings(**CONFIG))
    assert sent(responses.calls[0])["variables"]["subscriptionBillingAttemptInput"] == {
        "idempotencyKey": KEY, "originTime": "2026-03-01T10:00:00Z", "billingCycleSelector": {"index": 3}}


@responses.activate
def test_user_errors_are_permanent_and_say_why():
    responses.post(GRAPHQL, json=answer("subscriptionBillingAttemptCreate", {
        "subscriptionBillingAttempt": None,
        "userErrors": [{"field": ["subscriptionContractId"], "message": "Contract not found",
                        "code": "CONTRACT_NOT_FOUND"}]}))
    with pytest.raises(PermanentError, match="CONTRACT_NOT_FOUND: Contract not found") as caught:
        run("shopify.retry_payment", {"subscription_id": "1"}, settings(**CONFIG))
    assert type(caught.value) is PermanentError


@responses.activate
def test_pause_and_cancel_use_the_contract_mutations():
    responses.post(GRAPHQL, json=answer("subscriptionContractPause", {
        "contract": {"id": CONTRACT, "status": "PAUSED"}, "userErrors": []}))
    run("shopify.pause_subscription", {"subscription_id": "24398905522"}, settings(**CONFIG))
    pause = sent(responses.calls[0])
    assert pause["variables"] == {"subscriptionContractId": CONTRACT}
    assert "subscriptionContractPause(subscriptionContractId: $subscriptionContractId)" in pause["query"]
    responses.replace(responses.POST, GRAPHQL, json=answer("subscriptionContractCancel", {
        "contract": {"id": CONTRACT, "status": "CANCELLED"}, "userErrors": []}))
    run("shopify.cancel_subscription", {"subscription_id": "24398905522"}, settings(**CONFIG))
    cancel = sent(responses.calls[1])
    assert cancel["variables"] == {"subscriptionContractId": CONTRACT}
    assert "subscriptionContractCancel(subscriptionContractId: $subscriptionContractId)" in cancel["query"]


@responses.activate
def test_pausing_a_contract_already_paused_is_done_and_any_other_refusal_is_permanent():
    refused = answer("subscriptionContractPause", {"contract": None, "userErrors": [
        {"field": None, "message": "Cannot pause a contract in its current state", "code": "INVALID"}]})
    responses.post(GRAPHQL, json=refused)
    responses.post(GRAPHQL, json={"data": {"subscriptionContract": {"id": CONTRACT, "status": "PAUSED"}}})
    outcome = run("shopify.pause_subscription", {"subscription_id": "24398905522"}, settings(**CONFIG))
    assert outcome.extra == {"already": "PAUSED"}
    assert sent(responses.calls[1])["variables"] == {"id": CONTRACT}
    responses.reset()
    responses.post(GRAPHQL, json=refused)
    responses.post(GRAPHQL, json={"data": {"subscriptionContract": {"id": CONTRACT, "status": "CANCELLED"}}})
    with pytest.raises(PermanentError, match="INVALID: Cannot pause"):
        run("shopify.pause_subscription", {"subscription_id": "24398905522"}, settings(**CONFIG))


@responses.activate
def test_throttled_queries_wait_for_the_cost_bucket_to_refill():
    responses.post(GRAPHQL, json={"errors": [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None, "throttleStatus": {
            "maximumAvailable": 1000.0, "currentlyAvailable": 4, "restoreRate": 2.0}}}})
    with pytest.raises(RetriableError, match="throttled") as caught:
        run("shopify.retry_payment", {"subscription_id": "1"}, settings(**CONFIG))
    assert caught.value.retry_after == 3.0   # (10 - 4) points at 2 points/s


@pytest.mark.parametrize("code, error", [
    ("ACCESS_DENIED", CredentialsError), ("INTERNAL_SERVER_ERROR", RetriableError),
    ("MAX_COST_EXCEEDED", PermanentError), (None, PermanentError),
])
@responses.activate
def test_graphql_errors_map_to_what_to_do_next(code, error):
    responses.post(GRAPHQL, json={"errors": [{"message": "no", **({"extensions": {"code": code}} if code else {})}]})
    with pytest.raises(error) as caught:
        run("shopify.cancel_subscription", {"subscription_id": "1"}, settings(**CONFIG))
    assert type(caught.value) is error
    assert "shpat_secret_token" not in str(caught.value)


class TestShopifyActions(ActionContract):
    connector, api, secret = "shopify", API, "shpat_secret_token"
    config, dry_config = CONFIG, dict(HUB_SHOPIFY_SHOP="tea-shop")
    cases = [("shopify.retry_payment", {"subscription_id": "1"}, "POST", GRAPHQL),
             ("shopify.pause_subscription", {"subscription_id": "1"}, "POST", GRAPHQL),
             ("shopify.cancel_subscription", {"subscription_id": "1"}, "POST", GRAPHQL),
             ("shopify.resume_subscription", {"subscription_id": "1"}, "POST", GRAPHQL),
             ("shopify.change_subscription", {"subscription_id": "1", "quantity": 2}, "POST", GRAPHQL)]
    error_body = {"errors": "m"}


def test_contract_ids_are_checked_by_the_schema():
    for bad in ("sub_1", "gid://shopify/Order/1", ""):
        with pytest.raises(ValidationError):
            run("shopify.pause_subscription", {"subscription_id": bad}, settings(**CONFIG))


@responses.activate
def test_without_a_token_nothing_is_sent_and_the_exact_request_is_recorded():
    outcome = run("shopify.pause_subscription", {"subscription_id": "7"}, settings(HUB_SHOPIFY_SHOP="tea-shop"))
    assert len(responses.calls) == 0 and outcome.dry_run
    assert outcome.request["url"] == GRAPHQL
    assert outcome.request["body"]["variables"] == {"subscriptionContractId": "gid://shopify/SubscriptionContract/7"}
    assert outcome.request["headers"]["X-Shopify-Access-Token"] != "shpat_secret_token"


@responses.activate
def test_the_api_url_and_version_settings_are_used():
    responses.post("http://127.0.0.1:9/admin/api/2025-10/graphql.json", json=answer(
        "subscriptionContractCancel", {"contract": {"id": CONTRACT, "status": "CANCELLED"}, "userErrors": []}))
    run("shopify.cancel_subscription", {"subscription_id": "1"},
        settings(**CONFIG, HUB_SHOPIFY_API_URL="http://127.0.0.1:9", HUB_SHOPIFY_API_VERSION="2025-10"))
    assert len(responses.calls) == 1


@responses.activate
def test_the_credentials_check_is_the_cheapest_authenticated_query():
    import connectors
    from tests.connectors.actions import client

    shopify = connectors.get("shopify")
    responses.post(GRAPHQL, json={"data": {"shop": {"name": "Tea Shop"}}})
    assert shopify.check(client(shopify, settings(**CONFIG))).data == {"data": {"shop": {"name": "Tea Shop"}}}
    assert json.loads(responses.calls[0].request.body)["query"] == "query { shop { name } }"
    responses.replace(responses.POST, GRAPHQL, json={"errors": [{"message": "Access denied for shop field.",
                                                                 "extensions": {"code": "ACCESS_DENIED"}}]})
    with pytest.raises(CredentialsError):
        shopify.check(client(shopify, settings(**CONFIG)))


DRAFT = "gid://shopify/SubscriptionDraft/512"
LINE = "gid://shopify/SubscriptionLine/ab3c-9f"
OLD_VARIANT, NEW_VARIANT = "gid://shopify/ProductVariant/111", "gid://shopify/ProductVariant/222"


def _opened(quantity: int = 1, variant: str = OLD_VARIANT) -> dict:
    return answer("subscriptionContractUpdate", {"draft": {"id": DRAFT, "lines": {"nodes": [
        {"id": LINE, "quantity": quantity, "variantId": variant}]}}, "userErrors": []})


@responses.activate
def test_resume_activates_the_contract_and_an_active_one_is_already_done():
    responses.post(GRAPHQL, json=answer("subscriptionContractActivate", {
        "contract": {"id": CONTRACT, "status": "ACTIVE"}, "userErrors": []}))
    run("shopify.resume_subscription", {"subscription_id": "24398905522"}, settings(**CONFIG))
    body = sent(responses.calls[0])
    assert body["variables"] == {"subscriptionContractId": CONTRACT}
    assert "subscriptionContractActivate(subscriptionContractId: $subscriptionContractId)" in body["query"]
    responses.reset()
    responses.post(GRAPHQL, json=answer("subscriptionContractActivate", {"contract": None, "userErrors": [
        {"field": None, "message": "Contract is already active", "code": "INVALID"}]}))
    responses.post(GRAPHQL, json={"data": {"subscriptionContract": {"id": CONTRACT, "status": "ACTIVE"}}})
    assert run("shopify.resume_subscription", {"subscription_id": "1"}, settings(**CONFIG)).extra == {
        "already": "ACTIVE"}


@responses.activate
def test_a_plan_change_edits_a_draft_of_the_contract_and_commits_it():
    responses.post(GRAPHQL, json=_opened())
    responses.post(GRAPHQL, json=answer("subscriptionDraftLineUpdate", {
        "lineUpdated": {"id": LINE, "quantity": 2, "variantId": NEW_VARIANT}, "userErrors": []}))
    responses.post(GRAPHQL, json=answer("subscriptionDraftCommit", {
        "contract": {"id": CONTRACT, "status": "ACTIVE"}, "userErrors": []}))
    run("shopify.change_subscription", {"subscription_id": "24398905522", "variant_id": "222", "quantity": 2,
                                        "price": "59.90"}, settings(**CONFIG))
    opened, edited, committed = (sent(c) for c in responses.calls)
    assert opened["variables"] == {"contractId": CONTRACT}
    assert "subscriptionContractUpdate(contractId: $contractId)" in opened["query"]
    assert edited["variables"] == {"draftId": DRAFT, "lineId": LINE, "input": {
        "productVariantId": NEW_VARIANT, "quantity": 2, "currentPrice": "59.90"}}
    assert "subscriptionDraftLineUpdate(draftId: $draftId, lineId: $lineId, input: $input)" in edited["query"]
    assert committed["variables"] == {"draftId": DRAFT}
    assert "subscriptionDraftCommit(draftId: $draftId)" in committed["query"]


@responses.activate
def test_a_quantity_change_the_line_already_has_commits_nothing():
    responses.post(GRAPHQL, json=_opened(quantity=3))
    outcome = run("shopify.change_subscription", {"subscription_id": "1", "quantity": 3}, settings(**CONFIG))
    assert outcome.extra == {"already": "changed"} and len(responses.calls) == 1


@pytest.mark.parametrize("step", ["subscriptionContractUpdate", "subscriptionDraftLineUpdate",
                                  "subscriptionDraftCommit"])
@responses.activate
def test_user_errors_of_any_draft_step_fail_the_change_naming_the_step(step):
    refusal = {"userErrors": [{"field": ["input", "quantity"], "message": "Quantity is invalid",
                               "code": "INVALID"}]}
    steps = [("subscriptionContractUpdate", _opened()["data"]["subscriptionContractUpdate"]),
             ("subscriptionDraftLineUpdate", {"lineUpdated": {"id": LINE}, "userErrors": []}),
             ("subscriptionDraftCommit", {"contract": {"id": CONTRACT}, "userErrors": []})]
    for name, payload in steps:
        responses.post(GRAPHQL, json=answer(name, {**payload, **refusal} if name == step else payload))
        if name == step:
            break
    with pytest.raises(PermanentError, match=f"Shopify {step} refused: INVALID: Quantity is invalid") as caught:
        run("shopify.change_subscription", {"subscription_id": "1", "quantity": 5}, settings(**CONFIG))
    assert type(caught.value) is PermanentError
    assert len(responses.calls) == [s for s, _ in steps].index(step) + 1  # nothing after the refusal


@responses.activate
def test_a_contract_without_the_named_line_is_refused():
    responses.post(GRAPHQL, json=_opened())
    with pytest.raises(PermanentError, match="no line gid://shopify/SubscriptionLine/zz"):
        run("shopify.change_subscription", {"subscription_id": "1", "quantity": 5,
                                            "line_id": "gid://shopify/SubscriptionLine/zz"}, settings(**CONFIG))


def test_a_change_needs_a_variant_or_a_quantity_and_a_variant_id():
    for bad in ({"subscription_id": "1"}, {"subscription_id": "1", "variant_id": "price_pro"}):
        with pytest.raises(ValidationError):
            run("shopify.change_subscription", bad, settings(**CONFIG))
