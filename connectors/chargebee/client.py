"""Chargebee outbound calls: billing actions for dunning (providers.md §3.5).

API v2 at ``https://{site}.chargebee.com/api/v2`` (or ``HUB_CHARGEBEE_API_URL``), HTTP Basic auth
with the API key as user name and an empty password, form-encoded bodies, and
``chargebee-idempotency-key`` = the planned action's key on every POST.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

from marshmallow import Schema, fields, validate

from connectors.base import ActionContext, ActionSpec, OnRepeat
from connectors.http import ApiClient, Outcome, form_value, unix_seconds
from hub.kernel.errors import PermanentError
from hub.kernel.settings import Settings

#: Chargebee does not publish a figure we could confirm (providers.md §3.5); 10/s stays well inside
#: what live sites allow and can be raised where the limiter accepts overrides.
RATE_LIMITS: dict[str, tuple[int, float]] = {"default": (10, 1.0)}


class ChargebeeClient(ApiClient):
    connector = "chargebee"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "ChargebeeClient":
        key = settings["HUB_CHARGEBEE_API_KEY"] or ""
        base = settings["HUB_CHARGEBEE_API_URL"]
        if not base:
            site = settings["HUB_CHARGEBEE_SITE"]
            if not site and not dry_run:
                raise PermanentError("set HUB_CHARGEBEE_SITE (or HUB_CHARGEBEE_API_URL) to call Chargebee")
            base = f"https://{site or '<HUB_CHARGEBEE_SITE>'}.chargebee.com"
        basic = base64.b64encode(f"{key}:".encode()).decode()
        return cls(base, {"Authorization": f"Basic {basic}", "Accept": "application/json"},
                   dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])

    def post(self, path: str, ctx: ActionContext, form: Mapping[str, Any]) -> Outcome:
        body = {k: form_value(v) for k, v in form.items() if v is not None}
        return self.request("POST", f"/api/v2/{path.lstrip('/')}", form=body or None,
                            headers={"chargebee-idempotency-key": ctx.key})


def _chargebee(client: ApiClient) -> ChargebeeClient:
    assert isinstance(client, ChargebeeClient), "Chargebee actions need the Chargebee client"
    return client


# -- schemas ---------------------------------------------------------------------------------
class CollectPaymentParams(Schema):
    invoice_id = fields.String(required=True, validate=validate.Length(min=1))
    amount = fields.Integer(load_default=None, validate=validate.Range(min=1))  # minor units; default: amount due
    payment_source_id = fields.String(load_default=None)
    comment = fields.String(load_default=None)


class PauseSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Length(min=1))
    pause_option = fields.String(load_default="immediately", validate=validate.OneOf(
        ["immediately", "end_of_term", "specific_date", "billing_cycles"]))
    pause_date = fields.Raw(load_default=None)  # with specific_date: unix seconds or ISO-8601
    resume_date = fields.Raw(load_default=None)  # unix seconds or ISO-8601; unset: paused until resumed
    skip_billing_cycles = fields.Integer(load_default=None)  # with billing_cycles


class CancelSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Length(min=1))
    end_of_term = fields.Boolean(load_default=False)
    cancel_reason_code = fields.String(load_default=None)
    #: Product Catalog 1.0 sites cancel with /cancel; 2.0 sites (the default) with /cancel_for_items
    product_catalog_v1 = fields.Boolean(load_default=False)


class ResumeSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Length(min=1))


class ChangeSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Length(min=1))
    item_price_id = fields.String(load_default=None)  # the new plan's item price
    current_item_price_id = fields.String(load_default=None)  # the plan being replaced (to keep its quantity)
    quantity = fields.Integer(load_default=None, validate=validate.Range(min=1))
    end_of_term = fields.Boolean(load_default=False)


# -- actions ---------------------------------------------------------------------------------
def collect_payment(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/v2/invoices/{id}/collect_payment``: charge an unpaid invoice now."""
    return _chargebee(client).post(f"invoices/{params['invoice_id']}/collect_payment", ctx, {
        "amount": params.get("amount"), "payment_source_id": params.get("payment_source_id"),
        "comment": params.get("comment")})


def pause_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/v2/subscriptions/{id}/pause``."""
    return _chargebee(client).post(f"subscriptions/{params['subscription_id']}/pause", ctx, {
        "pause_option": params["pause_option"], "pause_date": unix_seconds(params.get("pause_date")),
        "resume_date": unix_seconds(params.get("resume_date")), "skip_billing_cycles": params.get("skip_billing_cycles")})


def cancel_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/v2/subscriptions/{id}/cancel_for_items`` (``/cancel`` on Product Catalog 1.0)."""
    verb = "cancel" if params.get("product_catalog_v1") else "cancel_for_items"
    return _chargebee(client).post(f"subscriptions/{params['subscription_id']}/{verb}", ctx, {
        "end_of_term": params.get("end_of_term"), "cancel_reason_code": params.get("cancel_reason_code")})


def resume_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/v2/subscriptions/{id}/resume`` with ``resume_option=immediately``."""
    return _chargebee(client).post(f"subscriptions/{params['subscription_id']}/resume", ctx,
                                   {"resume_option": "immediately"})


def change_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/v2/subscriptions/{id}/update_for_items``: the plan item price replaced (or its
    quantity set), ``end_of_term`` to apply it at the renewal. A new plan replaces the old one
    (``replace_items_list`` is not used: add-ons stay)."""
    item = params.get("item_price_id") or params.get("current_item_price_id")
    if not item:
        raise PermanentError("change_subscription needs item_price_id or current_item_price_id")
    return _chargebee(client).post(f"subscriptions/{params['subscription_id']}/update_for_items", ctx, {
        "subscription_items[item_price_id][0]": item, "subscription_items[quantity][0]": params.get("quantity"),
        "end_of_term": params.get("end_of_term")})


IDEMPOTENT = "`chargebee-idempotency-key` = the action key on every POST"

ACTIONS: dict[str, ActionSpec] = {
    "collect_payment": ActionSpec("collect_payment", CollectPaymentParams, collect_payment,
                                  "Collect an unpaid invoice now (dunning retry).",
                                  on_repeat=OnRepeat("single", IDEMPOTENT + "; later, a paid invoice cannot be "
                                                               "collected again")),
    "pause_subscription": ActionSpec("pause_subscription", PauseSubscriptionParams, pause_subscription,
                                     "Pause a subscription."),
    "cancel_subscription": ActionSpec("cancel_subscription", CancelSubscriptionParams, cancel_subscription,
                                      "Cancel a subscription now or at the end of the term."),
    "resume_subscription": ActionSpec("resume_subscription", ResumeSubscriptionParams, resume_subscription,
                                      "Resume a paused subscription now."),
    "change_subscription": ActionSpec("change_subscription", ChangeSubscriptionParams, change_subscription,
                                      "Change a subscription's plan or quantity, now or at the end of the term."),
}
