"""Turn one canonical event into planned actions and cancellations. Pure apart from the read-only
``facts`` (usage history and the outbox, read inside the caller's transaction)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.kernel.events import CanonicalEvent
from hub.kernel.values import parse_time, rfc3339
from hub.rules.expressions import Scope, days_since
from hub.rules.facts import Facts, NoFacts
from hub.rules.model import MISSED_GRACE, PlannedAction, Rule, RuleSet, Step, action_key

log = logging.getLogger(__name__)
_NO_FACTS = NoFacts()


@dataclass
class Cancellation:
    """``event_id`` cancels the pending steps of rule ``rule_id``: when the event concerns a
    subscription, those planned for that subscription and the subscriber-level ones (not those of
    the subscriber's other subscriptions); otherwise all of the subscriber's (``outbox.cancel``)."""

    rule_id: str
    event_id: str
    subscription: str | None = None


def event_view(event: CanonicalEvent) -> dict[str, Any]:
    """``event`` as conditions and templates see it (the CloudEvents envelope)."""
    return {"id": event.id, "type": event.type, "time": event.time, "subject": event.subject,
            "source": event.source, "provider": event.provider, "providereventid": event.providereventid,
            "providertype": event.providertype, "data": event.data}


def context(event: CanonicalEvent, subscriber: dict[str, Any] | None, now: datetime, *,
            variables: dict[str, Any] | None = None, facts: Facts | None = None) -> Scope:
    """What conditions and templates see: the event, its parts, the subscriber profile, ``now``,
    ``vars`` and the helpers. Built once per event and shared by every rule it triggers."""
    facts = facts or _NO_FACTS
    ctx = Scope((name, value) for name, value in event.data.items() if isinstance(value, dict))
    ctx["event"] = event_view(event)
    # the stored profile wins, except where it knows nothing (a time zone only the event carries)
    ctx["subscriber"] = {**event.part("subscriber"), **{k: v for k, v in (subscriber or {}).items() if v is not None}}
    ctx["now"] = now
    ctx["vars"] = variables or {}
    ctx["days_since"] = lambda value: days_since(value, now)
    ctx["usage_ratio"] = lambda metric, days=30: facts.usage_ratio(str(metric), float(days), now)
    return ctx


def resolve(ctx: dict[str, Any], dotted: str) -> Any:
    value: Any = ctx
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def plan(ruleset: RuleSet, event: CanonicalEvent, subscriber: dict[str, Any] | None, now: datetime,
         subject: str, facts: Facts | None = None, errors: list[str] | None = None,
         ) -> tuple[list[PlannedAction], list[Cancellation]]:
    """Every action the rules plan for ``event``, and the rules whose pending steps it cancels.

    A rule that fails on this event (a condition comparing None to a number, a bad template) is
    logged and skipped; the other rules still plan.
    """
    facts = facts or _NO_FACTS
    triggered = ruleset.triggered_by(event.type)
    cancelling = ruleset.cancelled_by(event.type)
    if not triggered and not cancelling:
        return [], []
    ctx = context(event, subscriber, now, variables=ruleset.vars, facts=facts)
    cancels: list[Cancellation] = []
    subscription = event.part("subscription").get("id")
    for rule, cancel_on in cancelling:
        if any(c.rule_id == rule.id for c in cancels):
            continue
        try:
            if cancel_on.when is None or cancel_on.when(ctx):
                cancels.append(Cancellation(rule.id, event.id, str(subscription) if subscription else None))
        except Exception as exc:  # noqa: BLE001
            _rule_failed(rule, event, "cancel_on condition", exc, errors)
    drafts: list[_Draft] = []
    event_time = parse_time(event.time) if triggered else now
    for rule in triggered:
        try:
            if rule.when is not None and not rule.when(ctx):
                continue
            draft = _draft(rule, event, event_time, ctx, now, subject, ruleset.default_timezone)
            if draft is not None:
                drafts.append(draft)
        except Exception as exc:  # noqa: BLE001
            _rule_failed(rule, event, "planning", exc, errors)
    _revive_all(drafts, subject, event.id, facts)
    planned: list[PlannedAction] = []
    for draft in drafts:
        try:
            planned.extend(_actions(ruleset, draft, event, ctx, subject, facts))
        except Exception as exc:  # noqa: BLE001
            _rule_failed(draft.rule, event, "planning", exc, errors)
    return planned, cancels


def _rule_failed(rule: Rule, event: CanonicalEvent, stage: str, exc: Exception, errors: list[str] | None) -> None:
    message = f"rule {rule.id} ({rule.source}) failed in {stage} for event {event.id}: {type(exc).__name__}: {exc}"
    log.warning(message)
    if errors is not None:
        errors.append(message)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def due_time(rule: Rule, step: Step, anchor: datetime, subscriber: dict[str, Any],
             default_zone: str = "UTC") -> datetime:
    """anchor -/+ offset, then moved to ``send_at`` (local time of day on that local date) in the
    subscriber's zone, else the rule's, else the merchant's (``default_zone``)."""
    due = anchor - step.offset if step.direction == "before" else anchor + step.offset
    if rule.send_at is None:
        return due
    zone = _zone(str(subscriber.get("timezone") or "")) if subscriber.get("timezone") else None
    zone = zone or (_zone(rule.send_at.timezone) if rule.send_at.timezone else None)
    zone = zone or _zone(default_zone) or timezone.utc
    local = due.astimezone(zone)
    moved = local.replace(hour=rule.send_at.at.hour, minute=rule.send_at.at.minute, second=0, microsecond=0)
    return moved.astimezone(timezone.utc)


@dataclass
class _Draft:
    """A rule that holds for the event: its steps and their outbox keys, before revival and throttle."""

    rule: Rule
    occurrence: str
    steps: list[tuple[Step, datetime]]
    keys: dict[tuple[str, int], str]


def _draft(rule: Rule, event: CanonicalEvent, event_time: datetime, ctx: Scope, now: datetime,
           subject: str, default_zone: str = "UTC") -> _Draft | None:
    if rule.anchor:
        anchor_value = resolve(ctx, rule.anchor)
        if not anchor_value:
            return None
        anchor = parse_time(anchor_value)
        occurrence = rfc3339(anchor)
    else:
        anchor, occurrence = event_time, event.id
    steps: list[tuple[Step, datetime]] = []
    for step in rule.steps:
        due = due_time(rule, step, anchor, ctx["subscriber"], default_zone)
        missed = due < event_time or due < now - MISSED_GRACE
        if missed and rule.missed == "skip":
            continue
        steps.append((step, due))
    if not steps:
        return None
    keys = {(step.name, i): action_key(rule.id, subject, occurrence, step.name, i)
            for step, _ in steps for i in range(len(rule.step_actions(step)))}
    return _Draft(rule, occurrence, steps, keys)


def _actions(ruleset: RuleSet, draft: _Draft, event: CanonicalEvent, ctx: Scope, subject: str,
             facts: Facts) -> list[PlannedAction]:
    rule, steps, keys = draft.rule, draft.steps, draft.keys
    if rule.throttle is not None:
        steps = _throttled(rule, steps, facts, set(keys.values()), draft.occurrence if rule.anchor else None)
    out = []
    for number, (step, due) in enumerate(steps, 1):
        step_ctx = ctx.child(step={"name": step.name, "number": number, "days": step.offset.days,
                                   "offset": step.name, "due_at": rfc3339(due)})
        for index, action in enumerate(rule.step_actions(step)):
            out.append(PlannedAction(
                key=keys[(step.name, index)], rule_id=rule.id, rules_hash=ruleset.hash, event_id=event.id,
                subject=subject, occurrence=draft.occurrence, step=step.name, connector=action.connector,
                name=action.name, params=action.params(step_ctx), due_at=due,
            ))
    return out


def _revive_all(drafts: list[_Draft], subject: str, event_id: str, facts: Facts) -> None:
    """Revive the scheduled rules' cancelled steps (see ``_revive``), asking the outbox once for all
    of them: usually nothing was cancelled, and then that one query is all it costs."""
    anchored = [d for d in drafts if d.rule.anchor]
    if not anchored:
        return
    found = facts.cancelled([k for d in anchored for k in d.keys.values()])
    for draft in anchored:
        first = {k: found[k] for k in draft.keys.values() if k in found}
        draft.keys = _revive(draft.keys, draft.rule.id, subject, draft.occurrence, event_id, facts, first)


def _revive(keys: dict[tuple[str, int], str], rule_id: str, subject: str, occurrence: str, event_id: str,
            facts: Facts, first: dict[str, tuple[int, str | None]]) -> dict[tuple[str, int], str]:
    """Steps cancelled earlier (a pause) and planned again by another event for the same anchor
    (the resume) get a fresh key derived from the cancelled row, so the plan is back in force.
    Planning the event that planned the cancelled row again revives nothing, and planning the
    reviving event again finds the same rows and the same keys. ``first``: what the outbox said
    about ``keys`` already."""
    found = first
    for _ in range(20):
        cancelled = {k: row_id for k, (row_id, planned_by) in found.items() if planned_by != event_id}
        if not cancelled:
            break
        keys = {(name, i): (action_key(rule_id, subject, occurrence, f"{name}#{cancelled[k]}", i)
                            if k in cancelled else k) for (name, i), k in keys.items()}
        found = facts.cancelled(keys.values())
    return keys


def _throttled(rule: Rule, steps: list[tuple[Step, datetime]], facts: Facts, own_keys: set[str],
               replacing: str | None) -> list[tuple[Step, datetime]]:
    assert rule.throttle is not None
    per, limit = rule.throttle.per, rule.throttle.limit
    kept: list[tuple[Step, datetime]] = []
    for step, due in steps:
        since = due - per
        earlier = facts.steps_since(rule.id, since, own_keys, replacing)
        if earlier + sum(1 for _, d in kept if d > since) < limit:
            kept.append((step, due))
    return kept


__all__ = ["Cancellation", "context", "due_time", "event_view", "plan", "resolve", "timedelta"]
