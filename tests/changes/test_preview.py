"""The preview's proration by the daily-rate method, worked out by hand.

The period is 1-30 November (30 days); the change takes effect on 21 November, 10 days before its end.
daily rate = period charge / 30; the new charge applies and the old one is credited for 10 days.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import responses

from hub.changes.preview import preview, provider_preview
from hub.changes.request import ChangeRequest
from hub.store import Subscription
from hub.web import create_app
from tests.changes.support import MID, subscription

AUTH = {"Authorization": "Bearer admin-test-token"}


def _preview(hub, ref: str, **request):
    with hub.store.session() as s:
        sub = s.query(Subscription).filter_by(external_id=ref).one()
        return preview(s, sub, ChangeRequest().load(request), MID)


def test_a_mid_cycle_upgrade_charges_the_difference_for_the_days_left(hub):
    subscription(hub, "stripe", "sub_basic", plan="price_basic", amount=3000)  # 30.00 a month
    subscription(hub, "stripe", "sub_other", plan="price_pro", amount=6000)  # the hub has seen pro at 60.00
    shown = _preview(hub, "sub_basic", change="change_plan", plan="price_pro")
    # (6000 - 3000) / 30 days x 10 days left = 1000: the subscriber owes 10.00
    assert shown["charge_per_period"] == {"before": 3000, "after": 6000, "currency": "USD"}
    assert shown["proration"]["amount"] == {"minor": 1000, "currency": "USD"}
    assert shown["proration"]["days_in_period"] == 30 and shown["proration"]["tags"] == ["mid-cycle change"]


def test_a_mid_cycle_downgrade_is_a_credit(hub):
    subscription(hub, "chargebee", "cb_pro", plan="pro-USD", amount=9000)
    shown = _preview(hub, "cb_pro", change="change_plan", plan="basic-USD", plan_amount=4500)
    # (4500 - 9000) / 30 x 10 = -1500: 15.00 back to the subscriber
    assert shown["proration"]["amount"]["minor"] == -1500


def test_a_quantity_change_prorates_the_seats_added(hub):
    subscription(hub, "stripe", "sub_seats", plan="price_seat", amount=1000, quantity=3)  # 3 x 10.00
    shown = _preview(hub, "sub_seats", change="change_quantity", quantity=5)
    # (5000 - 3000) / 30 x 10 = 666.67 -> 667
    assert shown["charge_per_period"]["after"] == 5000 and shown["proration"]["amount"]["minor"] == 667


def test_a_change_at_the_period_end_has_no_proration(hub):
    subscription(hub, "stripe", "sub_later", plan="price_seat", amount=1000, quantity=3)
    shown = _preview(hub, "sub_later", change="change_quantity", quantity=1, effective="period_end")
    assert shown["proration"] is None and shown["effective_at"].startswith("2026-12-01")


def test_an_unknown_plan_needs_its_amount(hub):
    import pytest

    from hub.changes.preview import PreviewError

    subscription(hub, "stripe", "sub_x", plan="price_basic", amount=3000)
    with pytest.raises(PreviewError, match="plan_amount"):
        _preview(hub, "sub_x", change="change_plan", plan="price_never_seen")


STRIPE = "https://stripe.test"


def _stripe_preview(*amounts: tuple[int, bool]) -> dict:
    """A preview invoice as Stripe documents it: lines with ``parent.subscription_item_details.proration``."""
    return {"object": "invoice", "currency": "usd", "lines": {"object": "list", "data": [
        {"object": "line_item", "amount": amount, "currency": "usd", "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {"subscription_item": "si_1", "proration": proration}}}
        for amount, proration in amounts]}}


@responses.activate
def test_stripes_own_preview_is_shown_beside_the_daily_rate_with_the_difference(make_hub):
    hub = make_hub(HUB_STRIPE_API_KEY="sk_test_x", HUB_STRIPE_API_URL=STRIPE)
    subscription(hub, "stripe", "sub_basic", plan="price_basic", amount=3000)
    responses.get(f"{STRIPE}/v1/subscriptions/sub_basic", json={"id": "sub_basic", "items": {"data": [
        {"id": "si_1", "price": {"id": "price_basic"}, "quantity": 1}]}})
    # Stripe prorates by the second: 1,001 back for basic, 2,003 for pro, then the next period's 6,000
    responses.post(f"{STRIPE}/v1/invoices/create_preview",
                   json=_stripe_preview((-1001, True), (2003, True), (6000, False)))
    request = ChangeRequest().load({"change": "change_plan", "plan": "price_pro", "plan_amount": 6000})
    with hub.store.session() as s:
        sub = s.query(Subscription).filter_by(external_id="sub_basic").one()
        shown = preview(s, sub, request, MID)
        theirs = provider_preview(hub.settings, sub, request, shown)
    assert shown["proration"]["amount"]["minor"] == 1000  # (6000 - 3000) / 30 x 10
    assert theirs["proration"] == {"minor": 1002, "currency": "USD"}
    assert theirs["difference"] == {"minor": 2, "currency": "USD"}  # Stripe's figure - the hub's
    sent = parse_qs(responses.calls[1].request.body)
    assert sent == {"subscription": ["sub_basic"], "subscription_details[items][0][id]": ["si_1"],
                    "subscription_details[items][0][price]": ["price_pro"],
                    "subscription_details[proration_behavior]": ["create_prorations"],
                    "subscription_details[proration_date]": [str(int(MID.timestamp()))]}


@responses.activate
def test_the_api_preview_carries_stripes_figure_or_says_why_not(make_hub):
    hub = make_hub(HUB_STRIPE_API_KEY="sk_test_x", HUB_STRIPE_API_URL=STRIPE)
    client = create_app(hub).test_client()
    subscription(hub, "stripe", "sub_seats", plan="price_seat", amount=1000, quantity=3)
    responses.get(f"{STRIPE}/v1/subscriptions/sub_seats", json={"id": "sub_seats", "items": {"data": [
        {"id": "si_9", "quantity": 3}]}})
    responses.post(f"{STRIPE}/v1/invoices/create_preview", status=400, json={"error": {
        "type": "invalid_request_error", "message": "No such subscription item"}})
    shown = client.post("/api/subscriptions/sub_seats/changes?preview=true",
                        json={"change": "change_quantity", "quantity": 5}, headers=AUTH).json
    assert shown["proration"]["tags"] == ["mid-cycle change"]
    assert shown["provider_preview"]["available"] is False and "400" in shown["provider_preview"]["reason"]
    plain = create_app(make_hub()).test_client()  # no Stripe key: nothing asked, and it says so
    subscription(plain.application.extensions["hub"], "stripe", "sub_other", plan="price_seat", amount=1000)
    answer = plain.post("/api/subscriptions/sub_other/changes?preview=true",
                        json={"change": "change_quantity", "quantity": 2}, headers=AUTH).json
    assert answer["provider_preview"] == {"source": "stripe: POST /v1/invoices/create_preview", "available": False,
                                          "reason": "HUB_STRIPE_API_KEY is not set"}
