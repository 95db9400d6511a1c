"""Stripe billing actions: form-encoded v1 requests with Idempotency-Key (providers.md §1.5)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import responses
from responses import matchers

from connectors.stripe.client import API_VERSION
from hub.kernel.errors import PermanentError, RetriableError
from tests.connectors.actions import (
    KEY,
    ActionContract,
    run,
    settings,
)

API = "https://stripe.test"
CONFIG = dict(HUB_STRIPE_API_KEY="sk_test_secret", HUB_STRIPE_API_URL=API)
FORM = "application/x-www-form-urlencoded"


def sent(call: responses.Call, *, idempotent: bool = True) -> list[tuple[str, str]]:
    headers = call.request.headers
    assert headers["Authorization"] == "Bearer sk_test_secret"
    assert headers["Stripe-Version"] == API_VERSION
    if idempotent:
        assert headers["Idempotency-Key"] == KEY
        assert headers["Content-Type"] == FORM
    else:
        assert "Idempotency-Key" not in headers
    return parse_qsl(call.request.body or "", keep_blank_values=True)


@responses.activate
def test_retry_payment_pays_the_open_invoice_off_session():
    responses.post(f"{API}/v1/invoices/in_1Qfail/pay", json={"id": "in_1Qfail", "status": "paid"})
    outcome = run("stripe.retry_payment", {"invoice_id": "in_1Qfail"}, settings(**CONFIG))
    assert outcome.status_code == 200 and outcome.data["status"] == "paid"
    assert sent(responses.calls[0]) == [("off_session", "true")]


@responses.activate
def test_retry_payment_with_another_payment_method():
    responses.post(f"{API}/v1/invoices/in_1/pay", json={"id": "in_1"})
    run("stripe.retry_payment", {"invoice_id": "in_1", "payment_method": "pm_card_visa"}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("payment_method", "pm_card_visa"), ("off_session", "true")]


@responses.activate
def test_a_declined_card_is_permanent_for_this_attempt():
    responses.post(f"{API}/v1/invoices/in_1/pay", status=402,
                   json={"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}})
    with pytest.raises(PermanentError) as caught:
        run("stripe.retry_payment", {"invoice_id": "in_1"}, settings(**CONFIG))
    assert caught.value.status == 402 and caught.value.response["body"]["error"]["code"] == "card_declined"


@responses.activate
def test_pause_subscription_sets_pause_collection():
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1"})
    run("stripe.pause_subscription", {"subscription_id": "sub_1", "behavior": "void",
                                      "resumes_at": "2026-02-01T00:00:00Z"}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("pause_collection[behavior]", "void"),
                                        ("pause_collection[resumes_at]", "1769904000")]


@responses.activate
def test_pause_defaults_to_keeping_invoices_as_drafts():
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1"})
    run("stripe.pause_subscription", {"subscription_id": "sub_1"}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("pause_collection[behavior]", "keep_as_draft")]


@responses.activate
def test_cancel_now_is_a_delete_with_options_in_the_query():
    responses.delete(f"{API}/v1/subscriptions/sub_1",
                     match=[matchers.query_param_matcher({"invoice_now": "true", "prorate": "false",
                                                          "cancellation_details[comment]": "dunning exhausted"})],
                     json={"id": "sub_1", "status": "canceled"})
    run("stripe.cancel_subscription", {"subscription_id": "sub_1", "invoice_now": True, "prorate": False,
                                       "comment": "dunning exhausted"}, settings(**CONFIG))
    assert sent(responses.calls[0], idempotent=False) == []


@responses.activate
def test_cancel_at_period_end_is_an_idempotent_update():
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1", "cancel_at_period_end": True})
    run("stripe.cancel_subscription", {"subscription_id": "sub_1", "at_period_end": True}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("cancel_at_period_end", "true")]


def test_ids_are_checked_by_the_schema():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        run("stripe.retry_payment", {"invoice_id": "sub_1"}, settings(**CONFIG))


@responses.activate
def test_stripe_should_retry_header_is_obeyed():
    responses.post(f"{API}/v1/invoices/in_1/pay", status=400, headers={"Stripe-Should-Retry": "true"},
                   json={"error": {"type": "api_error"}})
    with pytest.raises(RetriableError, match="Stripe asks for a retry"):
        run("stripe.retry_payment", {"invoice_id": "in_1"}, settings(**CONFIG))
    responses.post(f"{API}/v1/invoices/in_2/pay", status=500, headers={"Stripe-Should-Retry": "false"},
                   json={"error": {"type": "api_error"}})
    with pytest.raises(PermanentError, match="not to retry"):
        run("stripe.retry_payment", {"invoice_id": "in_2"}, settings(**CONFIG))


class TestStripeActions(ActionContract):
    connector, api, secret = "stripe", API, "sk_test_secret"
    config, dry_config = CONFIG, dict(HUB_STRIPE_API_URL=API)
    cases = [
        ("stripe.retry_payment", {"invoice_id": "in_1"}, "POST", "/v1/invoices/in_1/pay"),
        ("stripe.pause_subscription", {"subscription_id": "sub_1"}, "POST", "/v1/subscriptions/sub_1"),
        ("stripe.cancel_subscription", {"subscription_id": "sub_1"}, "DELETE", "/v1/subscriptions/sub_1"),
        ("stripe.resume_subscription", {"subscription_id": "sub_1"}, "POST", "/v1/subscriptions/sub_1"),
        ("stripe.change_subscription", {"subscription_id": "sub_1", "item_id": "si_1", "price": "price_2"}, "POST",
         "/v1/subscriptions/sub_1"),
    ]
    error_body = {"error": {"type": "invalid_request_error", "message": "m"}}
    status_errors = {409: RetriableError}  # a concurrent request with the same key, or a lock conflict


@responses.activate
def test_without_an_api_key_nothing_is_sent_and_the_exact_request_is_recorded():
    outcome = run("stripe.pause_subscription", {"subscription_id": "sub_1", "behavior": "void"},
                  settings(HUB_STRIPE_API_URL=API))
    assert len(responses.calls) == 0 and outcome.dry_run
    assert outcome.request == {"method": "POST", "url": f"{API}/v1/subscriptions/sub_1",
                               "headers": {"Authorization": "***", "Stripe-Version": API_VERSION,
                                           "Idempotency-Key": KEY},
                               "body": {"pause_collection[behavior]": "void"}}


@responses.activate
def test_resume_unsets_pause_collection():
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1"})
    run("stripe.resume_subscription", {"subscription_id": "sub_1"}, settings(**CONFIG))
    assert sent(responses.calls[0]) == [("pause_collection", "")]


@responses.activate
def test_change_reads_the_first_item_then_replaces_its_price_with_prorations():
    responses.get(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1", "items": {"data": [{"id": "si_9"}]}})
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1"})
    run("stripe.change_subscription", {"subscription_id": "sub_1", "price": "price_2", "quantity": 3},
        settings(**CONFIG))
    assert [c.request.method for c in responses.calls] == ["GET", "POST"]
    assert sorted(sent(responses.calls[1])) == [("items[0][id]", "si_9"), ("items[0][price]", "price_2"),
                                                 ("items[0][quantity]", "3"),
                                                 ("proration_behavior", "create_prorations")]


@responses.activate
def test_change_at_the_period_end_does_not_prorate():
    responses.post(f"{API}/v1/subscriptions/sub_1", json={"id": "sub_1"})
    run("stripe.change_subscription", {"subscription_id": "sub_1", "item_id": "si_1", "quantity": 2,
                                       "at_period_end": True}, settings(**CONFIG))
    assert ("proration_behavior", "none") in sent(responses.calls[0])
