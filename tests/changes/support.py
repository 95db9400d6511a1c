"""Subscriptions as the hub holds them, for the change tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hub.store import Subscriber, Subscription, utcnow

PERIOD = (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))  # 30 days
MID = datetime(2026, 11, 21, tzinfo=timezone.utc)  # 10 days left


def subscription(hub: Any, provider: str, external_id: str, *, plan: str, amount: int, quantity: int = 1,
                 currency: str = "USD") -> int:
    with hub.store.session() as s:
        person = Subscriber(email=f"{external_id}@example.com", created_at=utcnow(), updated_at=utcnow(), consent={},
                            attributes={}, segments=[])
        s.add(person)
        s.flush()
        s.add(Subscription(provider=provider, external_id=external_id, subscriber_id=person.id, status="active",
                           plan={"id": plan}, quantity=quantity, amount_minor=amount, currency=currency,
                           current_period_start=PERIOD[0], current_period_end=PERIOD[1], created_at=utcnow(),
                           updated_at=utcnow()))
        return person.id
