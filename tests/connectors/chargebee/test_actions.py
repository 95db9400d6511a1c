"""Chargebee billing actions: API v2, Basic auth with the key, chargebee-idempotency-key (§3.5)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, parse_qsl

import pytest
import responses

from hub.kernel.errors import PermanentError
from tests.connectors.actions import (
    KEY,
    ActionContract,
    run,
    settings,
)

CONFIG = dict(HUB_CHARGEBEE_API_KEY="test_cbkey", HUB_CHARGEBEE_SITE="acme-test")
API = "https://acme-test.chargebee.com/api/v2"


def sent(call: responses.Call) -> list[tuple[str, str]]:
    headers = call.request.headers
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"test_cbkey:").decode()
    assert headers["chargebee-idempotency-key"] == KEY
    if call.request.body:
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    return parse_qsl(call.request.body or "", keep_blank_values=True)


@responses.activate
def test_collect_payment_charges_the_invoice():
    responses.post(f"{API}/invoices/inv_42/collect_payment", json={"invoice": {"id": "inv_42", "status": "paid"}})
    outcome = run("chargebee.collect_payment", {"invoice_id": "inv_42", "amount": 2900,
                                                "comment": "dunning retry"}, settings(**CONFIG))
    assert outcome.data["invoice"]["status"] == "paid"
    assert sent(responses.calls[0]) == [("amount", "2900"), ("comment", "dunning retry")]


@responses.activate
def test_collect_payment_without_options_sends_no_body():
    responses.post(f"{API}/invoices/inv_42/collect_payment", json={"invoice": {"id": "inv_42"}})
    run("chargebee.collect_payment", {"invoice_id": "inv_42"}, settings(**CONFIG))
    assert sent(responses.calls[0]) == []


@responses.activate
def test_the_api_url_setting_wins_over_the_site():
    responses.post("https://cb-proxy.test/api/v2/invoices/inv_1/collect_payment", json={})
    run("chargebee.collect_payment", {"invoice_id": "inv_1"},
        settings(**CONFIG, HUB_CHARGEBEE_API_URL="https://cb-proxy.test"))
    assert len(responses.calls) == 1


@responses.activate
def test_pause_subscription():
    responses.post(f"{API}/subscriptions/sub_9/pause", json={"subscription": {"id": "sub_9"}})
    run("chargebee.pause_subscription", {"subscription_id": "sub_9", "pause_option": "specific_date",
                                         "pause_date": 1767225600, "resume_date": "2026-02-01T00:00:00Z"},
        settings(**CONFIG))
    assert sent(responses.calls[0]) == [("pause_option", "specific_date"), ("pause_date", "1767225600"),
                                        ("resume_date", "1769904000")]


@responses.activate
def test_cancel_subscription_for_items_at_end_of_term():
    responses.post(f"{API}/subscriptions/sub_9/cancel_for_items", json={"subscription": {"id": "sub_9"}})
    run("chargebee.cancel_subscription", {"subscription_id": "sub_9", "end_of_term": True}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("end_of_term", "true")]


@responses.activate
def test_cancel_subscription_on_product_catalog_1():
    responses.post(f"{API}/subscriptions/sub_9/cancel", json={"subscription": {"id": "sub_9"}})
    run("chargebee.cancel_subscription", {"subscription_id": "sub_9", "product_catalog_v1": True},
        settings(**CONFIG))
    assert sent(responses.calls[0]) == [("end_of_term", "false")]


def test_a_key_without_a_site_says_which_setting_is_missing():
    with pytest.raises(PermanentError, match="HUB_CHARGEBEE_SITE"):
        run("chargebee.collect_payment", {"invoice_id": "inv_1"}, settings(HUB_CHARGEBEE_API_KEY="k"))


class TestChargebeeActions(ActionContract):
    connector, api, secret = "chargebee", API, "test_cbkey"
    config, dry_config = CONFIG, dict(HUB_CHARGEBEE_SITE="acme-test")
    cases = [
        ("chargebee.collect_payment", {"invoice_id": "inv_1"}, "POST", "/invoices/inv_1/collect_payment"),
        ("chargebee.pause_subscription", {"subscription_id": "s1"}, "POST", "/subscriptions/s1/pause"),
        ("chargebee.cancel_subscription", {"subscription_id": "s1"}, "POST", "/subscriptions/s1/cancel_for_items"),
        ("chargebee.resume_subscription", {"subscription_id": "s1"}, "POST", "/subscriptions/s1/resume"),
        ("chargebee.change_subscription", {"subscription_id": "s1", "item_price_id": "pro-USD"}, "POST",
         "/subscriptions/s1/update_for_items"),
    ]
    error_body = {"message": "m", "type": "invalid_request", "api_error_code": "x", "http_status_code": 400}


@responses.activate
def test_without_an_api_key_nothing_is_sent_and_the_exact_request_is_recorded():
    outcome = run("chargebee.cancel_subscription", {"subscription_id": "s1"}, settings(HUB_CHARGEBEE_SITE="acme-test"))
    assert len(responses.calls) == 0 and outcome.dry_run
    assert outcome.request == {"method": "POST", "url": f"{API}/subscriptions/s1/cancel_for_items",
                               "headers": {"Authorization": "***", "Accept": "application/json",
                                           "chargebee-idempotency-key": KEY},
                               "body": {"end_of_term": "false"}}


@responses.activate
def test_resume_is_immediate():
    responses.post(f"{API}/subscriptions/s1/resume", json={"subscription": {"id": "s1"}})
    run("chargebee.resume_subscription", {"subscription_id": "s1"}, settings(**CONFIG))
    assert parse_qs(responses.calls[0].request.body) == {"resume_option": ["immediately"]}


@responses.activate
def test_change_replaces_the_plan_item_price_and_quantity_at_the_end_of_term():
    responses.post(f"{API}/subscriptions/s1/update_for_items", json={"subscription": {"id": "s1"}})
    run("chargebee.change_subscription", {"subscription_id": "s1", "item_price_id": "pro-USD-monthly", "quantity": 3,
                                          "end_of_term": True}, settings(**CONFIG))
    assert parse_qs(responses.calls[0].request.body) == {
        "subscription_items[item_price_id][0]": ["pro-USD-monthly"], "subscription_items[quantity][0]": ["3"],
        "end_of_term": ["true"]}
