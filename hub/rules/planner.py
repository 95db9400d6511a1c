"""Turn one canonical event into planned actions and cancellations, with no side effects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.events import CanonicalEvent, matches
from hub.values import parse_time

from .model import PlannedAction, Rule, RuleSet, action_key


@dataclass
class Cancellation:
    rule_id: str
    event_id: str


def context(event: CanonicalEvent, subscriber: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """What conditions and templates see: the event, its parts, the subscriber profile, ``now``."""
    ctx: dict[str, Any] = {name: value for name, value in event.data.items() if isinstance(value, dict)}
    ctx["event"] = event.to_dict()
    ctx["subscriber"] = {**event.part("subscriber"), **(subscriber or {})}
    ctx["now"] = now
    return ctx


def _resolve(ctx: dict[str, Any], dotted: str) -> Any:
    value: Any = ctx
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def plan(ruleset: RuleSet, event: CanonicalEvent, subscriber: dict[str, Any] | None, now: datetime,
         subject: str) -> tuple[list[PlannedAction], list[Cancellation]]:
    """Every action the rules plan for ``event``, and the rules whose pending steps it cancels."""
    ctx = context(event, subscriber, now)
    planned: list[PlannedAction] = []
    cancels: list[Cancellation] = []
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        if any(matches(p, event.type) for p in rule.cancel_on):
            cancels.append(Cancellation(rule.id, event.id))
        if any(matches(p, event.type) for p in rule.on) and _holds(rule, ctx):
            planned.extend(_plan_rule(ruleset, rule, event, ctx, now, subject))
    return planned, cancels


def _holds(rule: Rule, ctx: dict[str, Any]) -> bool:
    return rule.when is None or bool(rule.when(ctx))


def _plan_rule(ruleset: RuleSet, rule: Rule, event: CanonicalEvent, ctx: dict[str, Any], now: datetime,
               subject: str) -> list[PlannedAction]:
    if rule.anchor:
        anchor_value = _resolve(ctx, rule.anchor)
        if not anchor_value:
            return []
        anchor = parse_time(anchor_value)
        occurrence = anchor.isoformat()
    else:
        anchor = parse_time(event.time)
        occurrence = event.id
    out = []
    for step in rule.steps:
        due = anchor - step.offset if step.direction == "before" else anchor + step.offset
        if due < now and rule.missed == "skip" and rule.anchor:
            continue
        step_ctx = {**ctx, "step": {"name": step.name, "days": step.offset.days, "due_at": due}}
        for index, action in enumerate(rule.actions):
            out.append(PlannedAction(
                key=action_key(rule.id, subject, occurrence, step.name, index),
                rule_id=rule.id, rules_hash=ruleset.hash, event_id=event.id, subject=subject,
                occurrence=occurrence, step=step.name, connector=action.connector, name=action.name,
                params=action.params(step_ctx), due_at=due,
            ))
    return out
