"""Tables of provider sync (hub/backfill.py, hub/sync.py): the cursor of each connector's backfill,
so ``hub backfill --resume`` continues after a crash, and the webhook subscriptions the hub
registered at the providers, which the health check verifies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base
from hub.store.types import JsonDoc, UTCDateTime


class BackfillRun(Base):
    """The latest backfill of one connector: its time window, the phase and page it reached, and
    what it recorded so far. The cursor moves in the same transaction as the page it follows."""

    __tablename__ = "backfill_runs"

    connector: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    phase: Mapped[int] = mapped_column(Integer, default=0)  # index into the connector's phases
    cursor: Mapped[Any] = mapped_column(JsonDoc, nullable=True)  # the provider's next-page token
    pages: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JsonDoc, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookRegistration(Base):
    """A webhook subscription the hub created at a provider (``hub connectors register``)."""

    __tablename__ = "webhook_registrations"

    connector: Mapped[str] = mapped_column(String(40), primary_key=True)
    remote_id: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    status: Mapped[str] = mapped_column(String(16))  # enabled | disabled | missing
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
