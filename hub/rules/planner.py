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
from hub.rules import billing
from hub.rules.expressions import Scope, days_since
from hub.rules.facts import Facts, NoFacts
from hub.rules.model import PlannedAction, Rule, RuleSet, Step, action_key

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
    #: for a rule with ``per:``: the instance the event names (its invoice); only that one is cancelled
    occurrence: str | None = None


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
                instance = rule.per(ctx) if rule.per is not None else None
                cancels.append(Cancellation(rule.id, event.id, str(subscription) if subscription else None,
                                            str(instance) if instance not in (None, "") else None))
        except Exception as exc:  # noqa: BLE001
            _rule_failed(rule, event, "cancel_on condition", exc, errors)
    drafts: list[_Draft] = []
    event_time = parse_time(event.time) if triggered else now
    for rule in triggered:
        try:
            if rule.when is not None and not rule.when(ctx):
                continue
            draft = _draft(ruleset, rule, event, event_time, ctx, now, subject)
            if draft is not None:
                drafts.append(draft)
        except Exception as exc:  # noqa: BLE001
            _rule_failed(rule, event, "planning", exc, errors)
    _revive_all(drafts, subject, event.id, facts)
    planned: list[PlannedAction] = []
    for draft in drafts:
        try:
            planned.extend(_actions(ruleset, draft, event, ctx, subject, facts, planned))
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


def nominal_time(step: Step, anchor: datetime) -> datetime:
    """anchor -/+ offset, before ``send_at`` moves it."""
    return anchor - step.offset if step.direction == "before" else anchor + step.offset


def local_zone(rule: Rule, subscriber: dict[str, Any], default_zone: str = "UTC") -> Any:
    """The subscriber's time zone when known, else the rule's (``send_at.timezone``), else the
    merchant's (``default_zone``, ``HUB_DEFAULT_TIMEZONE``)."""
    zone = _zone(str(subscriber.get("timezone") or "")) if subscriber.get("timezone") else None
    zone = zone or (_zone(rule.send_at.timezone) if rule.send_at and rule.send_at.timezone else None)
    return zone or _zone(default_zone) or timezone.utc


def due_time(rule: Rule, step: Step, anchor: datetime, subscriber: dict[str, Any],
             default_zone: str = "UTC") -> datetime:
    """anchor -/+ offset, then moved to ``send_at`` (local time of day on that local date)."""
    due = nominal_time(step, anchor)
    if rule.send_at is None:
        return due
    local = due.astimezone(local_zone(rule, subscriber, default_zone))
    moved = local.replace(hour=rule.send_at.at.hour, minute=rule.send_at.at.minute, second=0, microsecond=0)
    return moved.astimezone(timezone.utc)


@dataclass
class _Draft:
    """A rule that holds for the event: its steps (due time, and why a step is suppressed or moved)
    and their outbox keys, before revival and throttle."""

    rule: Rule
    occurrence: str
    steps: list[tuple[Step, datetime, str | None, str | None]]  # step, due, suppressed, note
    keys: dict[tuple[str, int], str]


def _draft(ruleset: RuleSet, rule: Rule, event: CanonicalEvent, event_time: datetime, ctx: Scope, now: datetime,
           subject: str) -> _Draft | None:
    if rule.anchor:
        anchor_value = resolve(ctx, rule.anchor)
        if not anchor_value:
            return None
        anchor = parse_time(anchor_value)
        occurrence = rfc3339(anchor)
    else:
        anchor, occurrence = event_time, event.id
    instance = rule.per(ctx) if rule.per is not None else None
    if instance not in (None, ""):
        occurrence = str(instance)  # one cadence per invoice: planning it again adds nothing
    horizon = ruleset.policy.missed_horizon
    historic = now - event_time > horizon
    steps: list[tuple[Step, datetime, str | None, str | None]] = []
    for step in rule.steps:
        due = due_time(rule, step, anchor, ctx["subscriber"], ruleset.default_timezone)
        if due >= now or (not historic and due >= event_time):
            steps.append((step, due, None, None))
        elif historic:
            steps.append((step, due, "skipped-historic",
                          f"the event is from {rfc3339(event_time)}, more than missed_horizon "
                          f"({_span(horizon)}) before it was planned at {rfc3339(now)}: history, not sent"))
        elif nominal_time(step, anchor) >= event_time:
            # the day-0 step: its time came with the event, only the send hour had passed that day
            steps.append((step, event_time, None, f"send time {rfc3339(due)} had passed when the event "
                                                   "happened: sent at once"))
        elif rule.missed == "run":
            steps.append((step, event_time, None, f"due {rfc3339(due)}, before the event happened "
                                                   "(missed: run): sent at once"))
        else:
            steps.append((step, due, "skipped-missed", f"due {rfc3339(due)}, before the event happened at "
                                                        f"{rfc3339(event_time)} (missed: skip)"))
    if not steps:
        return None
    keys = {(step.name, i): action_key(rule.id, subject, occurrence, step.name, i)
            for step, *_ in steps for i in range(len(rule.step_actions(step)))}
    return _Draft(rule, occurrence, steps, keys)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _actions(ruleset: RuleSet, draft: _Draft, event: CanonicalEvent, ctx: Scope, subject: str,
             facts: Facts, earlier: list[PlannedAction]) -> list[PlannedAction]:
    """The draft's rows: routed, delayed by quiet hours, throttled and capped (suppressed rows are
    kept, with the reason, so simulate and explain show them). ``earlier``: rows already planned
    for this event by other rules (a cap counts them)."""
    rule, keys = draft.rule, draft.keys
    policy = ruleset.policy
    steps = [(step, *_quiet(policy, rule, due, ctx["subscriber"], note)) if suppressed is None
             else (step, due, note) for step, due, suppressed, note in draft.steps]
    suppressed_as = {step.name: kind for step, _, kind, _ in draft.steps if kind}
    throttle_key = None
    if rule.throttle is not None:
        if rule.throttle.key is not None:
            value = rule.throttle.key(ctx)
            throttle_key = None if value in (None, "") else str(value)
        live = [(step, due) for step, due, _ in steps if step.name not in suppressed_as]
        kept = {step.name for step, _ in _throttled(rule, live, facts, set(keys.values()),
                                                    draft.occurrence if rule.replaces_moved_anchor else None,
                                                    throttle_key)}
        for step, _ in live:
            if step.name not in kept:
                suppressed_as[step.name] = "throttled"
    recipient = ctx["subscriber"].get("id")
    variant = rule.variant_for(str(recipient if recipient is not None else subject))
    out: list[PlannedAction] = []
    for number, (step, due, note) in enumerate(steps, 1):
        kind = suppressed_as.get(step.name)
        if kind == "throttled":
            t = rule.throttle
            assert t is not None
            note = (f"throttled: at most {t.limit} step(s) of {rule.id} per {_span(t.per)} for "
                    f"{t.key_source} {throttle_key or ''}".rstrip() + " already planned")
        elif kind is None and rule.channel in policy.caps:
            window = policy.caps[rule.channel]
            near = facts.channel_near(rule.channel, due, window, set(keys.values()))
            near = near or next((f"{p.rule_id} due {rfc3339(p.due_at)}" for p in earlier + out
                                 if p.channel == rule.channel and p.suppressed is None
                                 and abs(p.due_at - due) < window), None)
            if near:
                kind, note = "capped", (f"capped: at most one {rule.channel} message per {_span(window)}; "
                                        f"{near} is within it")
        step_ctx = ctx.child(step={"name": step.name, "number": number, "days": step.offset.days,
                                   "offset": step.name, "due_at": rfc3339(due)}, variant=variant)
        for index, action in enumerate(rule.step_actions(step)):
            params = action.params(step_ctx)
            connector, name, via, action_note, action_kind = action.connector, action.name, None, note, kind
            if connector == billing.CONNECTOR:
                via, provider = action.qualified, billing.provider_of(ctx)
                try:
                    routed = billing.route(name, provider, params)
                    connector, name, params = routed.connector, routed.name, routed.params
                    routing = f"routed to {connector}.{name} (the subscription's provider is {provider})"
                    action_note = f"{routing}; {note}" if note else routing
                except billing.NoRoute as exc:
                    action_kind = action_kind or "no-route"
                    action_note = f"{note}; {exc}" if note else str(exc)
            out.append(PlannedAction(
                key=keys[(step.name, index)], rule_id=rule.id, rules_hash=ruleset.hash, event_id=event.id,
                subject=subject, occurrence=draft.occurrence, step=step.name, connector=connector,
                name=name, params=params, due_at=due, suppressed=action_kind, note=action_note, via=via,
                channel=rule.channel, throttle_key=throttle_key, variant=variant,
                goal=rule.goal[0] if rule.goal else None, goal_until=due + rule.goal[1] if rule.goal else None,
            ))
    return out


def _quiet(policy: Any, rule: Rule, due: datetime, subscriber: dict[str, Any],
           note: str | None) -> tuple[datetime, str | None]:
    """A message due in quiet hours (local time) is delayed to their end, DST included."""
    quiet = policy.quiet
    if quiet is None or rule.channel not in quiet.channels:
        return due, note
    zone = local_zone(rule, subscriber)
    local = due.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    overnight = quiet.start > quiet.end
    inside = (at >= quiet.start or at < quiet.end) if overnight else quiet.start <= at < quiet.end
    if not inside:
        return due, note
    day = local.date() + timedelta(days=1) if overnight and at >= quiet.start else local.date()
    end = datetime.combine(day, quiet.end, tzinfo=zone).astimezone(timezone.utc)
    delayed = (f"quiet-hours-delayed: {local:%H:%M} {getattr(zone, 'key', 'UTC')} is within quiet hours "
               f"{quiet.start:%H:%M}-{quiet.end:%H:%M}; moved from {rfc3339(due)}")
    return end, f"{note}; {delayed}" if note else delayed


def _revive_all(drafts: list[_Draft], subject: str, event_id: str, facts: Facts) -> None:
    """Revive the scheduled rules' cancelled steps (see ``_revive``), asking the outbox once for all
    of them: usually nothing was cancelled, and then that one query is all it costs. A rule with
    ``per:`` is never revived: its instance ended with the payment, void or cancellation."""
    anchored = [d for d in drafts if d.rule.replaces_moved_anchor]
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
               replacing: str | None, key: str | None) -> list[tuple[Step, datetime]]:
    assert rule.throttle is not None
    per, limit = rule.throttle.per, rule.throttle.limit
    kept: list[tuple[Step, datetime]] = []
    for step, due in steps:
        since = due - per
        earlier = facts.steps_since(rule.id, since, own_keys, replacing, key)
        if earlier + sum(1 for _, d in kept if d > since) < limit:
            kept.append((step, due))
    return kept


__all__ = ["Cancellation", "context", "due_time", "event_view", "plan", "resolve", "timedelta"]
