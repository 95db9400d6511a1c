"""Compiled rules and the actions they plan."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Callable

from hub.kernel.events import ALL_TYPES, matches

_KEY_NAMESPACE = uuid.UUID("0b6c9f0e-8c5b-4a8e-a4c3-7f2d9e6b1a55")
_NAMESPACE_BYTES = _KEY_NAMESPACE.bytes
_DURATION = re.compile(r"^\s*(-?\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

#: steps of an event older than this when the hub plans it are recorded as skipped-historic, never
#: sent (an import of old history); ``vars.missed_horizon`` overrides it
MISSED_HORIZON = timedelta(days=1)

#: ``per:`` and ``throttle.key`` shorthands -> the expression they stand for
SCOPE_NAMES = {"subscriber": "{{ subscriber.id }}", "subscription": "{{ subscription.id }}",
               "invoice": "{{ invoice.id }}"}

Evaluator = Callable[[dict[str, Any]], Any]


def parse_duration(text: str | int) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``45s``, ``2w`` (a bare number means days)."""
    if isinstance(text, bool):
        raise ValueError(f"cannot parse duration {text!r} (use e.g. 30d, 12h, 15m)")
    if isinstance(text, int):
        return timedelta(days=text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"cannot parse duration {text!r} (use e.g. 30d, 12h, 15m)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def action_key(rule_id: str, subject: str, occurrence: str, step: str, index: int) -> str:
    """The outbox's unique key (a UUID, so every provider accepts it as an idempotency key).

    Exactly ``str(uuid.uuid5(_KEY_NAMESPACE, name))``, formatted from the SHA-1 directly: the UUID
    object costs 4x more, and planning makes one key per action."""
    name = "\x1f".join([rule_id, subject, occurrence, step, str(index)])
    h = hashlib.sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    # version 5 in the 13th hex digit, the RFC 4122 variant (10xx) in the 17th
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


@dataclass
class CompiledAction:
    connector: str
    name: str
    params: Evaluator
    source: dict[str, Any]

    @property
    def qualified(self) -> str:
        return f"{self.connector}.{self.name}"


@dataclass
class Step:
    name: str  # e.g. "30d", "day-2" or "now"
    offset: timedelta
    direction: str  # before | after | at
    actions: list[CompiledAction] | None = None  # None: the rule's own actions


@dataclass
class CancelOn:
    """Event types that cancel the rule's pending steps, when ``when`` holds (or always)."""

    on: list[str]
    when: Evaluator | None = None
    when_source: str | None = None


@dataclass
class Throttle:
    """At most ``limit`` steps of the rule per ``per`` window per subscriber, or per ``key`` (a
    subscription, an invoice, an expression) among the subscriber's steps."""

    limit: int
    per: timedelta
    key: Evaluator | None = None
    key_source: str = "subscriber"


@dataclass
class SendAt:
    """A local time of day: in the subscriber's time zone when known, else ``timezone``, else the
    merchant's (``RuleSet.default_timezone``, from HUB_DEFAULT_TIMEZONE)."""

    at: time
    timezone: str = ""


@dataclass
class Rule:
    id: str
    on: list[str]
    actions: list[CompiledAction]
    description: str = ""
    enabled: bool = True
    when: Evaluator | None = None
    when_source: str | None = None
    anchor: str | None = None  # dotted path of the schedule's date, e.g. subscription.current_period_end
    steps: list[Step] = field(default_factory=lambda: [Step("now", timedelta(0), "at")])
    cancel_on: list[CancelOn] = field(default_factory=list)
    throttle: Throttle | None = None
    send_at: SendAt | None = None
    missed: str = "skip"
    source: str = ""  # file:line:col of the rule
    file: str = ""
    #: one instance per value (``per: invoice``): its steps are keyed by it, planning it again
    #: (a re-failure) changes nothing, and a cancelling event with a value cancels only that instance
    per: Evaluator | None = None
    per_source: str | None = None
    #: the message channel for playbook-wide caps and quiet hours (``vars.frequency_caps``,
    #: ``vars.quiet_hours``); None: neither applies
    channel: str | None = None
    #: ``split: {a: 50, b: 50}``: variant name -> weight; each recipient gets one, deterministically
    split: dict[str, int] | None = None
    #: ``goal: subscription.renewed within 14d``: the event type and how long after the step it counts
    goal: tuple[str, timedelta] | None = None

    def variant_for(self, recipient: str) -> str | None:
        """The recipient's variant: sha256 of rule id and recipient, modulo the total weight, picks
        the variant whose cumulative weight range holds it (names in the order written)."""
        if not self.split:
            return None
        point = int(hashlib.sha256(f"{self.id}\x1f{recipient}".encode()).hexdigest(), 16) % sum(self.split.values())
        for name, weight in self.split.items():
            if point < weight:
                return name
            point -= weight
        raise AssertionError("unreachable: weights are positive")

    def step_actions(self, step: Step) -> list[CompiledAction]:
        return self.actions if step.actions is None else step.actions

    @property
    def scheduled(self) -> bool:
        return self.anchor is not None

    @property
    def replaces_moved_anchor(self) -> bool:
        """A scheduled rule without ``per``: a new anchor date replaces the pending steps of the old one."""
        return self.anchor is not None and self.per is None


@dataclass
class PlannedAction:
    """One row for the outbox."""

    key: str
    rule_id: str
    rules_hash: str
    event_id: str
    subject: str
    occurrence: str
    step: str
    connector: str
    name: str
    params: dict[str, Any]
    due_at: datetime
    #: set when the step is recorded but not sent: throttled | capped | skipped-historic |
    #: skipped-missed | no-route; ``note`` says why
    suppressed: str | None = None
    #: why the step looks as it does (routed, delayed by quiet hours) or why it was suppressed
    note: str | None = None
    via: str | None = None  # the canonical action it was routed from (billing.retry_payment)
    channel: str | None = None
    throttle_key: str | None = None
    variant: str | None = None
    goal: str | None = None
    goal_until: datetime | None = None

    @property
    def qualified(self) -> str:
        return f"{self.connector}.{self.name}"


@dataclass
class QuietHours:
    """No message of ``channels`` between ``start`` and ``end`` local time (the subscriber's zone,
    else the rule's): a step due then is delayed to ``end``."""

    start: time
    end: time
    channels: frozenset[str]


@dataclass
class Policy:
    """Playbook-wide limits read from ``vars`` (``frequency_caps``, ``quiet_hours``,
    ``missed_horizon``)."""

    caps: dict[str, timedelta] = field(default_factory=dict)  # channel -> at most one message per window
    quiet: QuietHours | None = None
    missed_horizon: timedelta = MISSED_HORIZON


@dataclass
class RuleSet:
    """The rules in force, the hash of the files they came from, and indexes by event type
    (so an event costs only the rules that name its type)."""

    rules: list[Rule]
    hash: str
    files: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    file_hashes: dict[str, str] = field(default_factory=dict)
    default_timezone: str = "UTC"  # the merchant's zone, for subscribers whose zone is unknown
    policy: Policy = field(default_factory=Policy)
    _on: dict[str, list[Rule]] = field(default_factory=dict, repr=False)
    _cancel: dict[str, list[tuple[Rule, CancelOn]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self._on, self._cancel = {}, {}
        for t in ALL_TYPES:
            self._on[t] = [r for r in self.rules if r.enabled and any(matches(p, t) for p in r.on)]
            self._cancel[t] = [(r, c) for r in self.rules if r.enabled for c in r.cancel_on
                               if any(matches(p, t) for p in c.on)]

    def triggered_by(self, event_type: str) -> list[Rule]:
        found = self._on.get(event_type)
        if found is None:  # a type outside the vocabulary: match the globs once, then remember
            found = self._on[event_type] = [r for r in self.rules if r.enabled and any(matches(p, event_type)
                                                                                       for p in r.on)]
        return found

    def cancelled_by(self, event_type: str) -> list[tuple[Rule, CancelOn]]:
        found = self._cancel.get(event_type)
        if found is None:
            found = self._cancel[event_type] = [(r, c) for r in self.rules if r.enabled for c in r.cancel_on
                                                if any(matches(p, event_type) for p in c.on)]
        return found

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def anchored(self) -> set[str]:
        """Rules whose pending steps a new anchor date replaces (``outbox.write_planned``)."""
        return {r.id for r in self.rules if r.replaces_moved_anchor}

    @property
    def per_instance(self) -> set[str]:
        return {r.id for r in self.rules if r.per is not None}
