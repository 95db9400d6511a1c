"""Goals and splits: an event of a rule's goal type (``goal: subscription.renewed within 14d``)
converts the subscriber's sent steps of that rule whose window holds it; ``hub rules report RULE``
shows each split variant's sends, conversions and conversion rate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from hub.kernel.events import CanonicalEvent
from hub.kernel.values import parse_time
from hub.store import Action
from hub.store.models import ActionStatus

#: a step counts as sent when the tool got it, or (a dry run) when it would have
DELIVERED = (ActionStatus.DONE, ActionStatus.DRY_RUN)

def track(session: Session, event: CanonicalEvent, subscriber_id: int | None) -> int:
    """Mark the subscriber's sent actions waiting for ``event.type`` as converted by it (each action
    converts once: the first goal event in its window). Returns how many."""

    if subscriber_id is None:
        return 0
    at = parse_time(event.time)
    result = session.execute(update(Action).where(
        Action.subscriber_id == subscriber_id, Action.goal == event.type, Action.converted_by.is_(None),
        Action.status.in_(DELIVERED), Action.due_at <= at, Action.goal_until >= at,
    ).values(converted_by=event.id))
    return result.rowcount or 0


def report(session: Session, rule_id: str) -> dict[str, Any]:
    """Per variant of ``rule_id``: steps planned (not cancelled or suppressed), sent, converted and the
    conversion rate (converted / sent). A rule without a split has one variant, ``null``."""

    rows = session.execute(select(
        Action.variant, func.count(), func.sum(case((Action.status.in_(DELIVERED), 1), else_=0)),
        func.sum(case((Action.converted_by.is_not(None), 1), else_=0)), func.max(Action.goal),
    ).where(Action.rule_id == rule_id,
            Action.status.not_in([ActionStatus.CANCELLED, ActionStatus.SUPPRESSED]))
        .group_by(Action.variant).order_by(Action.variant)).all()
    variants = []
    goal = None
    for variant, planned, sent, converted, goal_type in rows:
        goal = goal or goal_type
        sent, converted = int(sent or 0), int(converted or 0)
        variants.append({"variant": variant, "planned": int(planned), "sent": sent, "converted": converted,
                         "conversion_rate": round(converted / sent, 4) if sent else None})
    return {"rule": rule_id, "goal": goal, "variants": variants}
