"""A change becomes one action of the subscription's provider, written to the outbox like a rule's:
its key comes from the request's idempotency key (the same request twice is one change), it is due
when the change takes effect, and its id is the change's id."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import connectors
from hub.changes.preview import PreviewError, effective_at
from hub.kernel.values import exponent
from hub.outbound import outbox
from hub.outbound.ratelimit import MARGIN
from hub.rules import PlannedAction
from hub.store import Action, Attempt, Subscription, utcnow
from hub.store.models import ActionStatus

if TYPE_CHECKING:
    from hub.kernel.settings import Settings
    from hub.runtime import Hub

RULE_ID = "subscription-change"
_KEYS = uuid.UUID("9b1f7c2e-4a5d-4e8b-bc61-2f0d3a7e5c19")


class ChangeError(ValueError):
    """The change cannot be asked of this subscription (the message says why)."""


def find(session: Session, ref: str) -> Subscription:
    """A subscription by ``provider:id`` or by the provider's id alone (when only one provider has it)."""
    provider, _, external = ref.rpartition(":") if ":" in ref else ("", "", ref)
    query = select(Subscription).where(Subscription.external_id == external)
    if provider:
        query = query.where(Subscription.provider == provider)
    found = session.execute(query.limit(2)).scalars().all()
    if not found:
        raise LookupError(f"no subscription {ref!r}")
    if len(found) > 1:
        raise ChangeError(f"{ref!r} names subscriptions at {found[0].provider} and {found[1].provider}: "
                          "say which as provider:id")
    return found[0]


def route(sub: Subscription, request: dict[str, Any]) -> tuple[str, str, dict[str, Any], bool]:
    """(connector, action, params, whether the provider applies it at the period end itself)."""
    change, effective = request["change"], request["effective"]
    at_end = effective == "period_end"
    sid = sub.external_id
    if sub.provider == "stripe":
        if change == "pause":
            return "stripe", "pause_subscription", {"subscription_id": sid}, False
        if change == "resume":
            return "stripe", "resume_subscription", {"subscription_id": sid}, False
        if change == "cancel":
            return "stripe", "cancel_subscription", {"subscription_id": sid, "at_period_end": at_end,
                                                     "comment": request.get("reason")}, at_end
        return "stripe", "change_subscription", {"subscription_id": sid, "price": request.get("plan"),
                                                 "quantity": request.get("quantity"), "at_period_end": at_end}, at_end
    if sub.provider == "chargebee":
        if change == "pause":
            return "chargebee", "pause_subscription", {"subscription_id": sid,
                                                       "pause_option": "end_of_term" if at_end else "immediately"}, at_end
        if change == "resume":
            return "chargebee", "resume_subscription", {"subscription_id": sid}, False
        if change == "cancel":
            return "chargebee", "cancel_subscription", {"subscription_id": sid, "end_of_term": at_end}, at_end
        return "chargebee", "change_subscription", {
            "subscription_id": sid, "item_price_id": request.get("plan"), "quantity": request.get("quantity"),
            "current_item_price_id": (sub.plan or {}).get("id"), "end_of_term": at_end}, at_end
    if sub.provider == "shopify":
        # Shopify schedules nothing: a change at the period end or on a date is planned for then here
        if change in ("pause", "resume", "cancel"):
            return "shopify", f"{change}_subscription", {"subscription_id": sid}, False
        price = request.get("plan_amount") if change == "change_plan" else None
        return "shopify", "change_subscription", {
            "subscription_id": sid, "variant_id": request.get("plan") if change == "change_plan" else None,
            "quantity": request.get("quantity"),
            "price": None if price is None else _decimal(price, sub.currency)}, False
    raise ChangeError(f"changes to {sub.provider} subscriptions are not supported")


def _decimal(minor: int, currency: str | None) -> str:
    """Minor units as the decimal string Shopify's Money inputs take (``2999`` USD -> ``"29.99"``)."""
    places = exponent(currency or "USD")
    return f"{Decimal(minor).scaleb(-places):.{places}f}"


def plan(sub: Subscription, request: dict[str, Any]) -> tuple[str, str, dict[str, Any], bool]:
    """``route`` with the parameters checked by the action's own schema, so a value the provider would
    refuse (a Stripe plan that is not a price id, a Shopify plan that is not a variant id) is a
    ``ChangeError`` before anything is planned."""
    connector, name, params, provider_times_it = route(sub, request)
    found = connectors.action_spec(f"{connector}.{name}")
    if found is None:
        raise ChangeError(f"{connector} has no action {name}")
    params = {k: v for k, v in params.items() if v is not None}
    try:
        found[1].schema().load(params)
    except ValidationError as exc:
        fields = {"price": "plan", "variant_id": "plan", "item_price_id": "plan", "quantity": "quantity"}
        raise ChangeError("; ".join(f"{fields.get(k, k)}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                    for k, v in sorted(exc.normalized_messages().items()))) from None
    return connector, name, params, provider_times_it


def change_key(sub: Subscription, request: dict[str, Any]) -> str:
    if request.get("idempotency_key"):
        return str(uuid.uuid5(_KEYS, f"{sub.provider}\x1f{sub.external_id}\x1f{request['idempotency_key']}"))
    return str(uuid.uuid4())


class Pacer:
    """Spreads a batch's changes that take effect now at the pace each provider allows: with N
    requests per W seconds, the k-th is due at now + k x W/N (the window counted as the rate limiter
    counts it). The outbox then holds the real schedule: the workers never queue work that cannot go
    yet (it would only wait in line, taking their turns from the sends whose rooms have opened), and
    a cancelled batch catches every row not yet due. Dry-run connectors are not paced."""

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self.dry = connectors.dry_run_connectors(settings)
        self.next: dict[tuple[str, str], datetime] = {}
        self.spacing: dict[tuple[str, str], float] = {}

    def _spacing(self, connector: str, name: str) -> tuple[tuple[str, str], float]:
        found = connectors.action_spec(f"{connector}.{name}")
        if found is None or connector in self.dry:
            return (connector, ""), 0.0
        bucket = found[1].bucket
        if (connector, bucket) not in self.spacing:
            limits = found[0].rate_limits_for(self.settings)
            windows = limits.get(bucket) or limits.get("default") or ()
            self.spacing[(connector, bucket)] = max((w / n for n, w in windows if n), default=0.0) * (1 + MARGIN)
        return (connector, bucket), self.spacing[(connector, bucket)]

    def slot(self, session: Session, connector: str, name: str, now: datetime) -> datetime:
        key, spacing = self._spacing(connector, name)
        if not spacing:
            return now
        if key not in self.next:  # after the paced changes already waiting (an interrupted run's)
            waiting = session.execute(select(func.max(Action.due_at)).where(
                Action.rule_id == RULE_ID, Action.connector == connector, Action.occurrence.like("batch:%"),
                Action.status == ActionStatus.SCHEDULED, Action.due_at > now,
                Action.due_at < now + timedelta(hours=1))).scalar_one_or_none()
            self.next[key] = waiting + timedelta(seconds=spacing) if waiting else now
        at = max(now, self.next[key])
        self.next[key] = at + timedelta(seconds=spacing)
        return at


def _plan_one(hub: "Hub", session: Session, ref: str, request: dict[str, Any], origin: str, now: datetime,
              dry_run_connectors: frozenset[str], pacer: Pacer | None = None) -> tuple[int, bool, bool]:
    """Write the change's action in the caller's transaction: (its id, whether it is new, whether due now)."""
    sub = find(session, ref)
    connector, name, params, provider_times_it = plan(sub, request)
    key = change_key(sub, request)
    found = session.execute(select(Action.id).where(Action.key == key)).scalar_one_or_none()
    if found is not None:  # the same key before: that change
        return found, False, False
    due = now if provider_times_it else effective_at(sub, request["effective"], now)
    if pacer is not None and due <= now:
        due = pacer.slot(session, connector, name, now)
    planned = PlannedAction(key=key, rule_id=RULE_ID, rules_hash="", event_id="", subject=sub.external_id,
                            occurrence=f"{origin}:{request['change']}"[:255], step=request["change"],
                            connector=connector, name=name, params=params, due_at=max(due, now))
    new = outbox.write_planned(session, [planned], subscriber_id=sub.subscriber_id,
                               dry_run_connectors=dry_run_connectors, anchored_rules=frozenset())
    action_id = new[0] if new else session.execute(select(Action.id).where(Action.key == key)).scalar_one()
    return action_id, bool(new), due <= now


def submit(hub: "Hub", ref: str, request: dict[str, Any], *, origin: str = "api",
           now: datetime | None = None) -> tuple[dict[str, Any], bool]:
    """Plan the change; returns its outcome view and whether it is new (False: the same key before)."""
    now = now or utcnow()
    with hub.store.session() as session:
        action_id, new, due_now = _plan_one(hub, session, ref, request, origin, now,
                                            connectors.dry_run_connectors(hub.settings))
    if new and due_now:
        outbox.dispatch(hub, [action_id])
    return outcome(hub, action_id), new


def submit_many(hub: "Hub", items: list[tuple[str, dict[str, Any]]], *, origin: str,
                now: datetime | None = None, pacer: Pacer | None = None) -> list[dict[str, Any]]:
    """Plan several changes the way ``submit`` plans one, in one transaction and with one dispatch (a
    batch's chunk of rows), those taking effect now spread by ``pacer``. One result per item:
    ``{"id", "status", "new"}``, or ``{"error"}`` for an item that cannot be planned (its subscription
    gone since the check...), which spoils no other."""
    now = now or utcnow()
    dry = connectors.dry_run_connectors(hub.settings)
    results: list[dict[str, Any]] = []
    due_now: list[int] = []
    with hub.store.session() as session:
        for ref, request in items:
            try:
                action_id, new, due = _plan_one(hub, session, ref, request, origin, now, dry, pacer)
            except (LookupError, ChangeError, PreviewError) as exc:
                results.append({"error": str(exc)})
                continue
            results.append({"id": action_id, "new": new})
            if new and due:
                due_now.append(action_id)
    if due_now:
        outbox.dispatch(hub, due_now)
    ids = [r["id"] for r in results if "id" in r]
    with hub.store.session() as session:
        statuses = dict(session.execute(select(Action.id, Action.status).where(Action.id.in_(ids))).all())
    for r in results:
        if "id" in r:
            r["status"] = statuses.get(r["id"])
    return results


def outcome(hub: "Hub", change_id: int, ref: str | None = None) -> dict[str, Any]:
    with hub.store.session() as session:
        action = session.get(Action, change_id)
        if action is None or action.rule_id != RULE_ID:
            raise LookupError(f"no change {change_id}")
        if ref is not None:
            sub = find(session, ref)
            if action.subject != sub.external_id or action.connector != sub.provider:
                raise LookupError(f"no change {change_id} of subscription {ref!r}")
        attempts = session.execute(select(Attempt.outcome, Attempt.status_code, Attempt.error)
                                   .where(Attempt.action_id == action.id).order_by(Attempt.id)).all()
        return {"id": action.id, "change": action.step, "status": action.status, "dry_run": action.dry_run,
                "action": f"{action.connector}.{action.name}", "params": action.params,
                "due_at": action.due_at.isoformat(), "attempts": [
                    {"outcome": o, "status_code": c, "error": e} for o, c, e in attempts],
                "last_error": action.last_error}


__all__ = ["ChangeError", "PreviewError", "find", "outcome", "Pacer", "plan", "route", "submit", "submit_many"]
