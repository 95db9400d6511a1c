"""Shopify outbound calls: subscription billing actions through the Admin GraphQL API.

``POST {HUB_SHOPIFY_API_URL or https://<shop>}/admin/api/<version>/graphql.json`` with
``X-Shopify-Access-Token``. GraphQL answers 200 even when the operation failed, so the body is
classified here like any other connector's HTTP answer:

- top-level ``errors`` with ``extensions.code`` ``THROTTLED`` (the cost bucket is empty): retried
  after the time the bucket needs to refill for this query's cost (``extensions.cost``);
  ``ACCESS_DENIED``: the token lacks a scope (credentials); ``INTERNAL_SERVER_ERROR``: retried;
  anything else (a query Shopify refuses, ``MAX_COST_EXCEEDED``): permanent;
- ``userErrors`` of the mutation (contract not found, terminated...): permanent, with the mutation
  named and each error's code and message;
- HTTP statuses as everywhere (429/5xx retried with Retry-After, 401/403 credentials).

Every effect is idempotent: a billing attempt carries ``idempotencyKey`` = the planned action's key
(Shopify creates one attempt, hence one order, per key); pausing a paused contract, activating an
active one or cancelling a cancelled one is reported done after a look at the contract's status; a
plan or quantity change that the contract's line already has is done without a new commit.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from connectors.base import ActionContext, ActionSpec, OnRepeat
from connectors.http import ApiClient, Outcome
from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from hub.kernel.settings import Settings

API_VERSION = "2026-01"

#: a mutation costs 10 points; a standard shop's bucket refills at 100 points/s (Plus: 1000/s)
RATE_LIMITS: dict[str, tuple[int, float]] = {"default": (10, 1.0)}

_GID = re.compile(r"^gid://shopify/SubscriptionContract/\d+$")
_VARIANT = re.compile(r"^(\d+|gid://shopify/ProductVariant/\d+)$")
_LINE = re.compile(r"^gid://shopify/SubscriptionLine/[\w-]+$")

BILLING_ATTEMPT = """mutation subscriptionBillingAttemptCreate($subscriptionContractId: ID!,
    $subscriptionBillingAttemptInput: SubscriptionBillingAttemptInput!) {
  subscriptionBillingAttemptCreate(subscriptionContractId: $subscriptionContractId,
      subscriptionBillingAttemptInput: $subscriptionBillingAttemptInput) {
    subscriptionBillingAttempt { id idempotencyKey }
    userErrors { field message code }
  }
}"""


def _contract_mutation(name: str) -> str:
    """``subscriptionContractPause`` / ``Cancel`` / ``Activate``: a contract id in, its status back."""
    return (f"mutation {name}($subscriptionContractId: ID!) {{\n  {name}(subscriptionContractId: "
            "$subscriptionContractId) {\n    contract { id status }\n    userErrors { field message code }\n  }\n}")


PAUSE, CANCEL, ACTIVATE = (_contract_mutation(f"subscriptionContract{verb}") for verb in ("Pause", "Cancel", "Activate"))
CONTRACT_STATUS = """query subscriptionContract($id: ID!) {
  subscriptionContract(id: $id) { id status }
}"""
# a plan or quantity change edits a draft of the contract and commits it (the SubscriptionDraft flow of
# the pinned API version; 2026-10 deprecates it for the asynchronous, early-access Calculation API)
CONTRACT_UPDATE = """mutation subscriptionContractUpdate($contractId: ID!) {
  subscriptionContractUpdate(contractId: $contractId) {
    draft { id lines(first: 50) { nodes { id quantity variantId } } }
    userErrors { field message code }
  }
}"""
DRAFT_LINE_UPDATE = """mutation subscriptionDraftLineUpdate($draftId: ID!, $lineId: ID!,
    $input: SubscriptionLineUpdateInput!) {
  subscriptionDraftLineUpdate(draftId: $draftId, lineId: $lineId, input: $input) {
    lineUpdated { id quantity variantId }
    userErrors { field message code }
  }
}"""
DRAFT_COMMIT = """mutation subscriptionDraftCommit($draftId: ID!) {
  subscriptionDraftCommit(draftId: $draftId) {
    contract { id status }
    userErrors { field message code }
  }
}"""


def variant_gid(value: str) -> str:
    value = str(value).strip()
    return value if value.startswith("gid://") else f"gid://shopify/ProductVariant/{value}"


def contract_gid(value: str) -> str:
    """A contract's global id from the numeric id the webhooks carry (or the gid itself)."""
    value = str(value).strip()
    return value if _GID.match(value) else f"gid://shopify/SubscriptionContract/{value}"


class ShopifyClient(ApiClient):
    connector = "shopify"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "ShopifyClient":
        shop = (settings["HUB_SHOPIFY_SHOP"] or "shop.myshopify.com").strip()
        shop = shop if "." in shop else f"{shop}.myshopify.com"
        base = settings["HUB_SHOPIFY_API_URL"] or f"https://{shop}"
        version = settings["HUB_SHOPIFY_API_VERSION"] or API_VERSION
        return cls(f"{base}/admin/api/{version}",
                   {"X-Shopify-Access-Token": settings["HUB_SHOPIFY_ACCESS_TOKEN"] or ""},
                   dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])

    def graphql(self, query: str, variables: dict[str, Any], *, whole: bool = False) -> Outcome:
        """One GraphQL operation; a failed one raises the ActionError that says what to do next.
        ``whole``: the answer is parsed whole, not trimmed like a recorded response (backfill pages)."""
        outcome = self.request("POST", "/graphql.json", json_body={"query": query, "variables": variables},
                               whole=whole)
        if outcome.dry_run:
            return outcome
        body = outcome.data if isinstance(outcome.data, dict) else {}
        errors = body.get("errors")
        if errors:
            raise graphql_error(errors, body.get("extensions") or {}, outcome)
        return outcome


def graphql_error(errors: Any, extensions: dict[str, Any], outcome: Outcome) -> Exception:
    """Classify top-level GraphQL ``errors`` (Shopify answers them with HTTP 200)."""
    errors = errors if isinstance(errors, list) else [{"message": str(errors)}]
    codes = {str((e.get("extensions") or {}).get("code") or "") for e in errors if isinstance(e, dict)}
    message = "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors)[:500]
    detail = {"status": outcome.status_code, "body": outcome.data}
    if "THROTTLED" in codes:
        return RetriableError(f"Shopify throttled the query: {message}", status=429, response=detail,
                              retry_after=throttle_wait(extensions))
    if "ACCESS_DENIED" in codes:
        return CredentialsError(f"Shopify denied access: {message}", status=403, response=detail)
    if "INTERNAL_SERVER_ERROR" in codes:
        return RetriableError(f"Shopify failed the query: {message}", status=500, response=detail)
    return PermanentError(f"Shopify refused the query: {message}", status=outcome.status_code, response=detail)


def throttle_wait(extensions: dict[str, Any]) -> float:
    """Seconds until the cost bucket holds this query's cost: (requested - available) / restore rate."""
    cost = extensions.get("cost") if isinstance(extensions.get("cost"), dict) else {}
    status = cost.get("throttleStatus") if isinstance(cost.get("throttleStatus"), dict) else {}
    try:
        missing = float(cost.get("requestedQueryCost") or 0) - float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return 1.0
    return max(1.0, round(missing / rate, 1)) if rate > 0 else 1.0


def _payload(outcome: Outcome, mutation: str) -> dict[str, Any]:
    data = (outcome.data or {}).get("data") if isinstance(outcome.data, dict) else None
    payload = (data or {}).get(mutation)
    return payload if isinstance(payload, dict) else {}


def _user_errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in payload.get("userErrors") or [] if isinstance(e, dict)]


def _refused(mutation: str, errors: list[dict[str, Any]], outcome: Outcome) -> PermanentError:
    text = "; ".join(f"{e.get('code') or 'ERROR'}: {e.get('message')}" for e in errors)[:500]
    return PermanentError(f"Shopify {mutation} refused: {text}", status=outcome.status_code,
                          response={"status": outcome.status_code, "body": outcome.data})


# -- schemas ---------------------------------------------------------------------------------
class _ContractParams(Schema):
    subscription_id = fields.String(required=True)  # the contract: numeric id or gid

    @validates("subscription_id")
    def _contract(self, value: str, **_: Any) -> None:
        if not (value.strip().isdigit() or _GID.match(value.strip())):
            raise ValidationError("a subscription contract id: digits or gid://shopify/SubscriptionContract/<id>")


class RetryPaymentParams(_ContractParams):
    origin_time = fields.String(load_default=None)  # DateTime for fulfilment intervals (see Shopify)
    billing_cycle_index = fields.Integer(load_default=None, strict=False)  # default: the current cycle


class PauseSubscriptionParams(_ContractParams):
    pass


class CancelSubscriptionParams(_ContractParams):
    pass


class ResumeSubscriptionParams(_ContractParams):
    pass


class ChangeSubscriptionParams(_ContractParams):
    variant_id = fields.String(load_default=None, validate=validate.Regexp(
        _VARIANT, error="a product variant id: digits or gid://shopify/ProductVariant/<id>"))  # the new plan
    quantity = fields.Integer(load_default=None, validate=validate.Range(min=1))
    #: the line's new price per unit and cycle, a decimal string; unset: the line's price is kept
    price = fields.Decimal(load_default=None, as_string=True, places=None, validate=validate.Range(min=0))
    line_id = fields.String(load_default=None, validate=validate.Regexp(
        _LINE, error="a subscription line id: gid://shopify/SubscriptionLine/<id>"))  # unset: the first line

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("variant_id") is None and data.get("quantity") is None:
            raise ValidationError("give variant_id and/or quantity", "variant_id")


# -- actions ---------------------------------------------------------------------------------
def _shopify(client: ApiClient) -> ShopifyClient:
    assert isinstance(client, ShopifyClient), "Shopify actions need the Shopify client"
    return client


def retry_payment(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``subscriptionBillingAttemptCreate`` with ``idempotencyKey`` = the action key: a repeat of this
    action is the same attempt at Shopify. The attempt's result arrives as a
    ``subscription_billing_attempts/success`` or ``/failure`` webhook."""
    attempt: dict[str, Any] = {"idempotencyKey": ctx.key}
    if params.get("origin_time"):
        attempt["originTime"] = params["origin_time"]
    if params.get("billing_cycle_index") is not None:
        attempt["billingCycleSelector"] = {"index": params["billing_cycle_index"]}
    outcome = _shopify(client).graphql(BILLING_ATTEMPT, {
        "subscriptionContractId": contract_gid(params["subscription_id"]),
        "subscriptionBillingAttemptInput": attempt})
    errors = _user_errors(_payload(outcome, "subscriptionBillingAttemptCreate"))
    if errors:
        raise _refused("subscriptionBillingAttemptCreate", errors, outcome)
    return outcome


def _set_status(client: ApiClient, params: dict[str, Any], mutation: str, query: str, target: str) -> Outcome:
    api = _shopify(client)
    gid = contract_gid(params["subscription_id"])
    outcome = api.graphql(query, {"subscriptionContractId": gid})
    errors = _user_errors(_payload(outcome, mutation))
    if not errors:
        return outcome
    # refused: maybe because it is already done (a repeat of this action, or done in Shopify)
    current = api.graphql(CONTRACT_STATUS, {"id": gid})
    contract = _payload(current, "subscriptionContract")
    if str(contract.get("status") or "").upper() == target:
        current.extra["already"] = target
        return current
    raise _refused(mutation, errors, outcome)


def pause_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``subscriptionContractPause``: no further billing until the contract is activated again."""
    return _set_status(client, params, "subscriptionContractPause", PAUSE, "PAUSED")


def cancel_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``subscriptionContractCancel``: the contract ends now."""
    return _set_status(client, params, "subscriptionContractCancel", CANCEL, "CANCELLED")


def resume_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``subscriptionContractActivate``: a paused (or failed) contract bills again."""
    return _set_status(client, params, "subscriptionContractActivate", ACTIVATE, "ACTIVE")


def _draft_step(api: ShopifyClient, query: str, variables: dict[str, Any], mutation: str
                ) -> tuple[Outcome, dict[str, Any]]:
    outcome = api.graphql(query, variables)
    payload = _payload(outcome, mutation)
    errors = _user_errors(payload)
    if errors:
        raise _refused(mutation, errors, outcome)
    return outcome, payload


def change_subscription(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """A contract line's variant (the plan) and/or quantity: ``subscriptionContractUpdate`` opens a
    draft of the contract, ``subscriptionDraftLineUpdate`` edits the line (``line_id``, else the
    first), ``subscriptionDraftCommit`` makes it the contract. Shopify bills the edited line from the
    next billing cycle. Each step's ``userErrors`` fail the action, naming the step. A line that already
    has the new variant and quantity (a repeat of this action) is done without a commit."""
    api = _shopify(client)
    opened, payload = _draft_step(api, CONTRACT_UPDATE, {"contractId": contract_gid(params["subscription_id"])},
                                  "subscriptionContractUpdate")
    if opened.dry_run:
        return opened
    draft = payload.get("draft") if isinstance(payload.get("draft"), dict) else {}
    lines = [n for n in ((draft.get("lines") or {}).get("nodes") or []) if isinstance(n, dict)]
    wanted = params.get("line_id")
    line = next((n for n in lines if n.get("id") == wanted), None) if wanted else (lines[0] if lines else None)
    if not draft.get("id") or line is None:
        raise PermanentError(f"subscriptionContractUpdate: the contract has no line {wanted or ''}".rstrip(),
                             status=opened.status_code, response={"status": opened.status_code, "body": opened.data})
    change: dict[str, Any] = {}
    if params.get("variant_id") and line.get("variantId") != variant_gid(params["variant_id"]):
        change["productVariantId"] = variant_gid(params["variant_id"])
    if params.get("quantity") is not None and line.get("quantity") != params["quantity"]:
        change["quantity"] = params["quantity"]
    if not change:
        opened.extra["already"] = "changed"
        return opened
    if params.get("price") is not None:
        change["currentPrice"] = str(params["price"])
    _draft_step(api, DRAFT_LINE_UPDATE, {"draftId": draft["id"], "lineId": line["id"], "input": change},
                "subscriptionDraftLineUpdate")
    committed, _ = _draft_step(api, DRAFT_COMMIT, {"draftId": draft["id"]}, "subscriptionDraftCommit")
    return committed


ACTIONS: dict[str, ActionSpec] = {
    "retry_payment": ActionSpec("retry_payment", RetryPaymentParams, retry_payment,
                                "Create a billing attempt on a subscription contract (dunning retry).",
                                on_repeat=OnRepeat("single", "`idempotencyKey` = the action key: one billing "
                                                             "attempt, one order, per key")),
    "pause_subscription": ActionSpec("pause_subscription", PauseSubscriptionParams, pause_subscription,
                                     "Pause a subscription contract."),
    "cancel_subscription": ActionSpec("cancel_subscription", CancelSubscriptionParams, cancel_subscription,
                                      "Cancel a subscription contract."),
    "resume_subscription": ActionSpec("resume_subscription", ResumeSubscriptionParams, resume_subscription,
                                      "Activate a paused subscription contract again."),
    "change_subscription": ActionSpec("change_subscription", ChangeSubscriptionParams, change_subscription,
                                      "Change a subscription contract line's variant (plan) or quantity."),
}
