"""Tables of the privacy module: the record each erasure leaves behind (no personal data in it),
and the exports produced for data requests (personal data: erased with the person)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base
from hub.store.types import BigId, JsonDoc, UTCDateTime


class Redaction(Base):
    """Proof that a person's data was erased, holding none of it: SHA-256 hashes of the identifiers
    (``email:<address>``, ``<provider>:<id>``, ...), what was erased per table, and which request asked."""

    __tablename__ = "redactions"
    __table_args__ = (Index("ix_redactions_requested", "requested_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    identifiers_hash: Mapped[str] = mapped_column(String(64))  # over every identifier, sorted
    identifier_hashes: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # one per identifier
    subscriber_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)  # the hub's own record ids
    counts: Mapped[dict[str, int]] = mapped_column(JsonDoc, default=dict)  # table -> rows erased or changed
    event_id: Mapped[str | None] = mapped_column(String(36))  # the subscriber.redact_requested event
    provider: Mapped[str | None] = mapped_column(String(40))  # who asked: shopify, hubspot, operator
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DataExport(Base):
    """Everything the hub held for one person when a data request arrived (``privacy.export``)."""

    __tablename__ = "data_exports"
    __table_args__ = (Index("ix_data_exports_subscriber", "subscriber_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(BigId)
    event_id: Mapped[str | None] = mapped_column(String(36))  # the subscriber.data_requested event
    provider: Mapped[str | None] = mapped_column(String(40))
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
