"""Stripe outbound calls: billing actions for dunning (providers.md §1.5).

Form-encoded v1 API, ``Authorization: Bearer <secret key>``, ``Stripe-Version`` pinned, and
``Idempotency-Key`` = the planned action's key on every POST (Stripe ignores it on DELETE, which
is idempotent by nature). Like Stripe's own client, a 409 (a concurrent request with the same
idempotency key, or a lock conflict) is retried later, and ``Stripe-Should-Retry`` is obeyed
when Stripe sends it.
"""

from __future__ import annotations

from typing import Any, Mapping

import requests
from marshmallow import Schema, fields, validate

from connectors.base import ActionContext, ActionSpec, OnRepeat
from connectors.http import ApiClient, Outcome, _body_text, form_value, retry_after_seconds, unix_seconds
from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from hub.kernel.settings import Settings

API_VERSION = "2026-06-24.dahlia"

#: Stripe allows 100 operations/s per account in live mode (25 in a sandbox) and 25/s per endpoint;
#: the billing actions stay within the per-endpoint figure.
RATE_LIMITS: dict[str, tuple[int, float]] = {"default": (25, 1.0)}


class StripeClient(ApiClient):
    connector = "stripe"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "StripeClient":
        key = settings["HUB_STRIPE_API_KEY"] or ""
        return cls(settings.get("HUB_STRIPE_API_URL", "https://api.stripe.com"),
                   {"Authorization": f"Bearer {key}", "Stripe-Version": API_VERSION},
                   dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])

    def call(self, method: str, path: str, ctx: ActionContext, form: Mapping[str, Any] | None = None
             ) -> Outcome:
        """One API call: POST bodies form-encoded with the idempotency key, DELETE params in the query."""
        if method == "POST":
            return self._classified(method, path, form=_encode(form or {}) or None,
                                    headers={"Idempotency-Key": ctx.key})
        return self._classified(method, path, params=_encode(form or {}) or None)

    def _classified(self, method: str, path: str, **kwargs: Any) -> Outcome:
        try:
            return self.request(method, path, **kwargs)
        except PermanentError as exc:
            if exc.status == 409 and not isinstance(exc, CredentialsError):
                raise RetriableError(f"{method} {path} answered 409 (concurrent request or lock); retried later",
                                     status=409, response=exc.response) from exc
            raise

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = super()._send(method, url, **kwargs)
        # Stripe says explicitly whether a failed request may be retried; that wins over the status
        should_retry = response.headers.get("Stripe-Should-Retry")
        if response.status_code >= 400 and should_retry in ("true", "false"):
            detail = {"status": response.status_code, "body": _body_text(response.text)}
            if should_retry == "true":
                raise RetriableError(f"{method} {url} answered {response.status_code}; Stripe asks for a retry",
                                     status=response.status_code, response=detail,
                                     retry_after=retry_after_seconds(response.headers.get("Retry-After")))
            if response.status_code >= 500 or response.status_code == 409:
                raise PermanentError(f"{method} {url} answered {response.status_code}; Stripe says not to retry",
                                     status=response.status_code, response=detail)
        return response


def _encode(form: Mapping[str, Any]) -> dict[str, str]:
    """Stripe's form encoding for the flat and one-level nested values these actions send."""
    out: dict[str, str] = {}
    for key, value in form.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            out.update({f"{key}[{k}]": form_value(v) for k, v in value.items() if v is not None})
        else:
            out[key] = form_value(value)
    return out


# -- schemas ---------------------------------------------------------------------------------
class RetryPaymentParams(Schema):
    invoice_id = fields.String(required=True, validate=validate.Regexp(r"^in_\w+$"))
    payment_method = fields.String(load_default=None)  # pm_...: charge this one instead of the default
    off_session = fields.Boolean(load_default=True)  # the customer is not present (dunning)


class PauseSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Regexp(r"^sub_\w+$"))
    behavior = fields.String(load_default="keep_as_draft",
                             validate=validate.OneOf(["keep_as_draft", "mark_uncollectible", "void"]))
    resumes_at = fields.Raw(load_default=None)  # unix seconds or ISO-8601


class CancelSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Regexp(r"^sub_\w+$"))
    at_period_end = fields.Boolean(load_default=False)
    invoice_now = fields.Boolean(load_default=None)  # immediate cancellation only
    prorate = fields.Boolean(load_default=None)  # immediate cancellation only
    comment = fields.String(load_default=None)  # cancellation_details[comment]


class ResumeSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Regexp(r"^sub_\w+$"))


class ChangeSubscriptionParams(Schema):
    subscription_id = fields.String(required=True, validate=validate.Regexp(r"^sub_\w+$"))
    price = fields.String(load_default=None, validate=validate.Regexp(r"^(price|plan)_\w+$"))  # the new plan
    quantity = fields.Integer(load_default=None, validate=validate.Range(min=1))
    item_id = fields.String(load_default=None)  # si_...; unset: the subscription's first item (read first)
    at_period_end = fields.Boolean(load_default=False)  # no proration: the new price bills from the renewal


# -- actions ---------------------------------------------------------------------------------
def _stripe(client: ApiClient) -> StripeClient:
    assert isinstance(client, StripeClient), "Stripe actions need the Stripe client"
    return client


def retry_payment(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /v1/invoices/{id}/pay``: attempt to collect an open invoice now. A decline (402) is
    permanent for this attempt; the dunning rule decides whether to plan another."""
    form = {"payment_method": params.get("payment_method"), "off_session": params.get("off_session")}
    return _stripe(client).call("POST", f"/v1/invoices/{params['invoice_id']}/pay", ctx, form)


def pause_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /v1/subscriptions/{id}`` with ``pause_collection[behavior]`` (and ``[resumes_at]``)."""
    pause = {"behavior": params["behavior"], "resumes_at": unix_seconds(params.get("resumes_at"))}
    return _stripe(client).call("POST", f"/v1/subscriptions/{params['subscription_id']}", ctx,
                                {"pause_collection": pause})


def cancel_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """At period end: ``POST /v1/subscriptions/{id}`` ``cancel_at_period_end=true``.
    Now: ``DELETE /v1/subscriptions/{id}`` (``invoice_now``/``prorate`` in the query)."""
    details = {"comment": params.get("comment")}
    path = f"/v1/subscriptions/{params['subscription_id']}"
    if params.get("at_period_end"):
        return _stripe(client).call("POST", path, ctx, {"cancel_at_period_end": True,
                                                       "cancellation_details": details})
    return _stripe(client).call("DELETE", path, ctx, {"invoice_now": params.get("invoice_now"),
                                                     "prorate": params.get("prorate"),
                                                     "cancellation_details": details})


def resume_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /v1/subscriptions/{id}`` with ``pause_collection=""``: collection resumes (Stripe's way
    to unset a pause)."""
    return _stripe(client).call("POST", f"/v1/subscriptions/{params['subscription_id']}", ctx,
                                {"pause_collection": ""})


def change_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /v1/subscriptions/{id}`` with ``items[0][id]`` and the new ``[price]`` and/or
    ``[quantity]``; ``proration_behavior`` ``create_prorations`` now, ``none`` at the period end.
    Without ``item_id`` the subscription is read first (``GET``) for its first item's id."""
    stripe = _stripe(client)
    path = f"/v1/subscriptions/{params['subscription_id']}"
    item = params.get("item_id")
    if not item:
        if stripe.dry_run:
            item = f"<first item of {params['subscription_id']}>"
        else:
            found = stripe.request("GET", path).data or {}
            items = ((found.get("items") or {}).get("data") or []) if isinstance(found, dict) else []
            if not items:
                raise PermanentError(f"GET {path}: the subscription has no items to change")
            item = items[0]["id"]
    form = {"items[0][id]": item, "items[0][price]": params.get("price"),
            "items[0][quantity]": params.get("quantity"),
            "proration_behavior": "none" if params.get("at_period_end") else "create_prorations"}
    return stripe.call("POST", path, ctx, form)


def preview_change(client: ApiClient, subscription_id: str, *, price: str | None, quantity: int | None,
                   proration_date: int) -> dict[str, Any] | None:
    """Stripe's own preview of a plan or quantity change made now (not an action: nothing changes):
    ``POST /v1/invoices/create_preview`` with the subscription, its first item's new ``price`` and/or
    ``quantity``, ``proration_behavior=create_prorations`` and ``proration_date`` (unix seconds, the
    moment the hub previews, so both figures are for the same instant). The proration is the sum of
    the preview's lines whose ``parent.subscription_item_details.proration`` is true (Stripe's
    documented way to pick them). None in dry run."""
    stripe = _stripe(client)
    if stripe.dry_run:
        return None
    path = f"/v1/subscriptions/{subscription_id}"
    found = stripe.request("GET", path, whole=True).data or {}
    items = ((found.get("items") or {}).get("data") or []) if isinstance(found, dict) else []
    if not items:
        raise PermanentError(f"GET {path}: the subscription has no items to preview a change of")
    form = {"subscription": subscription_id, "subscription_details[items][0][id]": items[0]["id"],
            "subscription_details[items][0][price]": price, "subscription_details[items][0][quantity]": quantity,
            "subscription_details[proration_behavior]": "create_prorations",
            "subscription_details[proration_date]": proration_date}
    invoice = stripe.request("POST", "/v1/invoices/create_preview", form=_encode(form), whole=True).data or {}
    lines = ((invoice.get("lines") or {}).get("data") or []) if isinstance(invoice, dict) else []
    prorations = [line for line in lines if isinstance(line, dict) and
                  (((line.get("parent") or {}).get("subscription_item_details") or {}).get("proration"))]
    return {"amount": sum(int(line.get("amount") or 0) for line in prorations),
            "currency": str(invoice.get("currency") or "").upper() or None, "lines": len(prorations)}


IDEMPOTENT = ("`Idempotency-Key` = the action key on every POST (Stripe answers a repeat with the first "
              "answer for at least 24 h); DELETE is idempotent")

ACTIONS: dict[str, ActionSpec] = {
    "retry_payment": ActionSpec("retry_payment", RetryPaymentParams, retry_payment,
                                "Pay an open invoice now (dunning retry).",
                                on_repeat=OnRepeat("single", IDEMPOTENT + "; later, a paid invoice cannot be paid "
                                                             "again")),
    "pause_subscription": ActionSpec("pause_subscription", PauseSubscriptionParams, pause_subscription,
                                     "Pause payment collection on a subscription."),
    "cancel_subscription": ActionSpec("cancel_subscription", CancelSubscriptionParams, cancel_subscription,
                                      "Cancel a subscription now or at the end of the period."),
    "resume_subscription": ActionSpec("resume_subscription", ResumeSubscriptionParams, resume_subscription,
                                      "Resume payment collection on a paused subscription."),
    "change_subscription": ActionSpec("change_subscription", ChangeSubscriptionParams, change_subscription,
                                      "Change a subscription's plan (price) or quantity, now or from the renewal."),
}
