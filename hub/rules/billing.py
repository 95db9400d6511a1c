"""Canonical billing actions: ``billing.retry_payment``, ``billing.pause_subscription`` and
``billing.cancel_subscription``, routed when planned to the billing provider of the subscription
(``stripe.*``, ``chargebee.*``, ``shopify.*``), so a playbook holds one rule per step instead of one
copy per provider.

A route names the provider's action and the provider-specific parameters it adds; the canonical
parameters are passed on where the provider's action declares them. A route whose connector or
action is not installed is found absent at planning time, so a connector added later (Shopify's
billing actions) is used as soon as it is registered, without touching the playbook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, fields

CONNECTOR = "billing"


class RetryPaymentParams(Schema):
    invoice_id = fields.String(required=True)
    subscription_id = fields.String(load_default=None)


class PauseSubscriptionParams(Schema):
    subscription_id = fields.String(required=True)


class CancelSubscriptionParams(Schema):
    subscription_id = fields.String(required=True)
    at_period_end = fields.Boolean(load_default=None)
    comment = fields.String(load_default=None)


@dataclass(frozen=True)
class Route:
    action: str  # <connector>.<action>
    fixed: dict[str, Any] = field(default_factory=dict)  # provider-specific parameters it adds
    renamed: dict[str, str] = field(default_factory=dict)  # canonical name -> the provider's


@dataclass(frozen=True)
class CanonicalAction:
    name: str
    schema: type[Schema]
    description: str
    routes: dict[str, Route]


ACTIONS: dict[str, CanonicalAction] = {a.name: a for a in (
    CanonicalAction("retry_payment", RetryPaymentParams, "Ask the subscription's billing provider to charge the "
                    "invoice again.", {
                        "stripe": Route("stripe.retry_payment"),
                        "chargebee": Route("chargebee.collect_payment"),
                        "shopify": Route("shopify.retry_payment"),
                    }),
    CanonicalAction("pause_subscription", PauseSubscriptionParams, "Pause the subscription at its provider.", {
        "stripe": Route("stripe.pause_subscription", {"behavior": "void"}),  # invoices made while paused are voided
        "chargebee": Route("chargebee.pause_subscription", {"pause_option": "immediately"}),
        "shopify": Route("shopify.pause_subscription"),
    }),
    CanonicalAction("cancel_subscription", CancelSubscriptionParams, "Cancel the subscription at its provider.", {
        "stripe": Route("stripe.cancel_subscription"),
        "chargebee": Route("chargebee.cancel_subscription", {"end_of_term": False},
                           renamed={"at_period_end": "end_of_term"}),
        "shopify": Route("shopify.cancel_subscription"),
    }),
)}


def spec(qualified: str) -> CanonicalAction | None:
    connector, _, name = qualified.partition(".")
    return ACTIONS.get(name) if connector == CONNECTOR else None


@dataclass
class Routed:
    connector: str
    name: str
    params: dict[str, Any]


class NoRoute(Exception):
    """The provider has no installed action for this canonical action; the message says why."""


def route(name: str, provider: str | None, params: dict[str, Any]) -> Routed:
    """The provider's action and parameters for canonical action ``name``."""
    from connectors import action_spec

    canonical = ACTIONS[name]
    target = canonical.routes.get(provider or "")
    if target is None:
        raise NoRoute(f"billing.{name}: no billing provider route for {provider or 'an unknown provider'} "
                      f"(routes: {', '.join(sorted(canonical.routes))})")
    found = action_spec(target.action)
    if found is None:
        raise NoRoute(f"billing.{name}: {target.action} is not installed")
    connector, spec_ = found
    declared = spec_.schema().fields
    out = {target.renamed.get(k, k): v for k, v in params.items() if v is not None}
    out = {k: v for k, v in out.items() if k in declared}
    out.update({k: v for k, v in target.fixed.items() if k in declared and k not in out})
    return Routed(connector.name, spec_.name, out)


def provider_of(ctx: dict[str, Any]) -> str | None:
    """The billing provider of the event's subscription: the provider that sent the event when it
    is one that bills, else the one recorded on the subscription part."""
    event = ctx.get("event") or {}
    billing = {p for a in ACTIONS.values() for p in a.routes}
    if event.get("provider") in billing:
        return str(event["provider"])
    subscription = ctx.get("subscription") or {}
    provider = subscription.get("provider") if isinstance(subscription, dict) else None
    return str(provider) if provider else None
