"""A change the hub applied is recorded at once as a canonical event (origin ``change``,
hub/changes/confirm.py); the provider's webhook for the same fact comes later (or, racing the
deliver worker, sooner). The second of the pair to arrive is recorded and applied to state as
usual, but reconciled with the first instead of being planned again: its rules have fired.

The same fact: same provider, subscription and canonical type, occurring within ``WINDOW`` of each
other (the provider's event time is when it happened there, however late the webhook is delivered).
Both events' ``data.reconciled`` names the other.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import parse_time
from hub.store import Event, utcnow

WINDOW = timedelta(minutes=15)
#: the facts a change produces (hub/changes/confirm.py)
TYPES = frozenset({EventType.SUBSCRIPTION_PAUSED, EventType.SUBSCRIPTION_RESUMED, EventType.SUBSCRIPTION_CANCELLED,
                   EventType.SUBSCRIPTION_CANCELLATION_SCHEDULED, EventType.SUBSCRIPTION_CHANGED})


def pair(session: Session, event: CanonicalEvent, origin: str) -> str | None:
    """Reconcile a just-recorded event with its counterpart of the other origin; its id, or None.

    Call after the event's state is applied: the subscription row is then locked, so a change's
    event and its webhook recorded at the same moment see each other. One indexed lookup.
    """
    if origin not in ("provider", "change") or event.type not in TYPES:
        return None
    sub_id = str(event.part("subscription").get("id") or "")
    if not sub_id:
        return None
    when = parse_time(event.time)
    candidates = session.execute(select(Event.id, Event.time, Event.data).where(
        Event.origin == ("change" if origin == "provider" else "provider"), Event.provider == event.provider,
        Event.type == event.type, Event.time >= when - WINDOW, Event.time <= when + WINDOW,
        Event.id != event.id)).all()
    found = [(abs(t - when), i, d) for i, t, d in candidates
             if str(((d or {}).get("subscription") or {}).get("id")) == sub_id and not (d or {}).get("reconciled")]
    if not found:
        return None
    _, other, other_data = min(found, key=lambda f: (f[0], f[1]))
    at = utcnow().isoformat()
    event.data["reconciled"] = {"with": other, "at": at}
    session.execute(update(Event).where(Event.id == event.id).values(data=dict(event.data)))
    session.execute(update(Event).where(Event.id == other).values(
        data={**other_data, "reconciled": {"with": event.id, "at": at}}))
    return other
