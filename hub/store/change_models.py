"""Tables of subscription-change batches (hub/changes/batch.py): a batch posted to the API and its
rows, each with the change it became (an action of the subscription's provider) or why it did not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base
from hub.store.types import BigId, JsonDoc, UTCDateTime


class BatchStatus:
    RUNNING = "running"  # rows are being planned
    PLANNED = "planned"  # every row became a change (the changes follow their own statuses)
    CANCELLED = "cancelled"  # no further row is planned; changes not yet sent were cancelled


class RowStatus:
    PENDING = "pending"  # not planned yet
    PLANNED = "planned"  # change_id names its change
    CANCELLED = "cancelled"  # the batch was cancelled before it was planned
    ERROR = "error"  # could not be planned (``error`` says why)


class ChangeBatch(Base):
    __tablename__ = "change_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))  # part of each row's default idempotency key
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.RUNNING)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeBatchRow(Base):
    __tablename__ = "change_batch_rows"
    __table_args__ = (UniqueConstraint("batch_id", "line", name="uq_change_batch_rows_line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(BigId, ForeignKey("change_batches.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    subscription: Mapped[str] = mapped_column(String(255))
    request: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # the validated change request (dates as text)
    status: Mapped[str] = mapped_column(String(16), default=RowStatus.PENDING)
    change_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # actions.id
    new: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # False: the same key was planned before
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
