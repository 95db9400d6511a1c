"""Canonical events for rule tests, built the way the normalizers build them."""

from __future__ import annotations

import itertools
from typing import Any

from hub.kernel.events import CanonicalEvent
from hub.simulate import SimulatedAction

_seq = itertools.count(1)


def event(type_: str, time: str, *, provider: str = "stripe", customer: str = "cus_1",
          email: str | None = "ann@example.com", timezone: str | None = None, **parts: Any) -> CanonicalEvent:
    subscriber: dict[str, Any] = {"external_ids": {provider: customer}}
    if email:
        subscriber["email"] = email
    if timezone:
        subscriber["timezone"] = timezone
    return CanonicalEvent(type=type_, time=time, provider=provider, providereventid=f"evt_{next(_seq)}",
                          providertype=type_, data={"subscriber": subscriber, **parts})


def subscription(id_: str = "sub_1", status: str = "active", *, period_end: str | None = None,
                 interval: str = "year", trial_end: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_, "status": status, "plan": {"id": "price_pro", "name": "Pro",
                                                                  "interval": interval, "interval_count": 1},
                           "amount": {"minor": 29000, "currency": "USD"}, **extra}
    if period_end:
        out["current_period_end"] = period_end
    if trial_end:
        out["trial_end"] = trial_end
    return out


def by_rule(results: list[SimulatedAction], rule: str, action: str | None = None) -> list[tuple[str, str, str]]:
    """(step, due_at, status) of one rule's actions, in due order."""
    return [(r.step or "", r.due_at, r.status) for r in results
            if r.rule == rule and (action is None or r.action == action)]
