"""Compiled rules and the actions they plan."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

_KEY_NAMESPACE = uuid.UUID("0b6c9f0e-8c5b-4a8e-a4c3-7f2d9e6b1a55")
_DURATION = re.compile(r"^\s*(-?\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | int) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``45s``, ``2w`` (a bare number means days)."""
    if isinstance(text, int):
        return timedelta(days=text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"cannot parse duration {text!r} (use e.g. 30d, 12h, 15m)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def action_key(rule_id: str, subject: str, occurrence: str, step: str, index: int) -> str:
    """The outbox's unique key (a UUID, so every provider accepts it as an idempotency key)."""
    return str(uuid.uuid5(_KEY_NAMESPACE, "\x1f".join([rule_id, subject, occurrence, step, str(index)])))


@dataclass
class CompiledAction:
    connector: str
    name: str
    params: Callable[[dict[str, Any]], dict[str, Any]]
    source: dict[str, Any]

    @property
    def qualified(self) -> str:
        return f"{self.connector}.{self.name}"


@dataclass
class Step:
    name: str  # e.g. "30d" or "now"
    offset: timedelta
    direction: str  # before | after | at


@dataclass
class Rule:
    id: str
    on: list[str]
    actions: list[CompiledAction]
    description: str = ""
    enabled: bool = True
    when: Callable[[dict[str, Any]], Any] | None = None
    anchor: str | None = None  # dotted path of the schedule's date, e.g. subscription.current_period_end
    steps: list[Step] = field(default_factory=lambda: [Step("now", timedelta(0), "at")])
    cancel_on: list[str] = field(default_factory=list)
    missed: str = "skip"
    source: str = ""  # file:line of the rule


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

    @property
    def qualified(self) -> str:
        return f"{self.connector}.{self.name}"


@dataclass
class RuleSet:
    """The rules in force and the hash of the files they came from."""

    rules: list[Rule]
    hash: str
    files: list[str] = field(default_factory=list)

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
