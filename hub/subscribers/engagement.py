"""The engagement score: each open, click, order or usage adds its weight, and every weight halves
every ``half_life_days``, so recent actions count most. Stored as (score, as of) and decayed on read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import parse_time
from hub.store.subscriber_models import ProfileStats

ACTIVITY = {EventType.PAYMENT_SUCCEEDED}  # counts toward "regular activity", not engagement
DEFAULT_WEIGHTS = {"message.opened": 1.0, "message.clicked": 3.0, "order.placed": 5.0, "order.paid": 5.0,
                   "usage.recorded": 2.0}
DEFAULT_HALF_LIFE_DAYS = 14.0


@dataclass(frozen=True)
class Weights:
    """What each event type adds to the score, and how fast it fades (``engagement:`` in segments.yaml)."""

    by_type: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS


def decayed(score: float, at: datetime | None, now: datetime, half_life_days: float) -> float:
    if not at or not score:
        return 0.0
    days = (now - at).total_seconds() / 86400
    return score * 0.5 ** (days / half_life_days)


def bump(stats: ProfileStats, event: CanonicalEvent, weights: dict[str, float], half_life_days: float) -> None:
    """Add one event's weight (an event older than the score is decayed to the score's date)."""
    weight = weights.get(event.type)
    when = parse_time(event.time)
    if weight or event.type in ACTIVITY:
        month = when.strftime("%Y-%m")
        if month not in (stats.active_months or []):
            stats.active_months = sorted([*(stats.active_months or []), month])[-13:]
    if not weight:
        return
    at = stats.engagement_at
    if at is None or when >= at:
        stats.engagement_score = decayed(stats.engagement_score or 0.0, at, when, half_life_days) + weight
        stats.engagement_at = when
    else:
        stats.engagement_score = (stats.engagement_score or 0.0) + weight * 0.5 ** (
            (at - when).total_seconds() / 86400 / half_life_days)
    stats.engagement_count = (stats.engagement_count or 0) + 1


def replay(stats: ProfileStats, events: Iterable[CanonicalEvent], weights: Weights | None = None) -> None:
    """Rebuild the score from a subscriber's events (after a merge or unmerge)."""
    weights = weights or Weights()
    for event in sorted(events, key=lambda e: parse_time(e.time)):
        bump(stats, event, weights.by_type, weights.half_life_days)

