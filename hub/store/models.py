"""Tables: raw deliveries, canonical events, subscribers and their identities, subscriptions,
and the outbox of planned actions with their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.store.types import BigId, JsonDoc, UTCDateTime


class Base(DeclarativeBase):
    pass


class DeliveryStatus:
    RECEIVED = "received"  # committed, waiting for the ingest worker
    PROCESSED = "processed"  # normalized, applied and planned
    FAILED = "failed"  # verified but could not be normalized: visible and replayable
    REDACTED = "redacted"  # body erased by a privacy request


class Delivery(Base):
    """A verified webhook exactly as received (body bytes and selected headers)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("connector", "dedup_key", name="uq_deliveries_dedup"),
        Index("ix_deliveries_status_received", "status", "received_at"),
        Index("ix_deliveries_connector", "connector", "id"),  # the console's per-tool views
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connector: Mapped[str] = mapped_column(String(40))
    dedup_key: Mapped[str] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_count: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    """A canonical event. ``id`` is deterministic, so a replay never records it twice."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_subscriber_time", "subscriber_id", "time"),
        Index("ix_events_type_time", "type", "time"),
        Index("ix_events_recorded", "recorded_at"),
        Index("ix_events_time", "time", "id"),  # the console's newest-first listing (keyset pages)
        Index("ix_events_delivery", "delivery_id"),  # a delivery's events
        # the changes' own events, looked up by the provider's webhook for the same fact (hub/ingest/reconcile.py)
        Index("ix_events_change", "provider", "type", "time", postgresql_where=text("origin = 'change'"),
              sqlite_where=text("origin = 'change'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(40))
    provider_event_id: Mapped[str] = mapped_column(String(255))
    provider_type: Mapped[str] = mapped_column(String(120))
    origin: Mapped[str] = mapped_column(String(16), default="provider")  # provider | derived | import | change
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Subscriber(Base):
    """One person across providers, and the profile the rules and segments read."""

    __tablename__ = "subscribers"
    # Search by the start of an e-mail or a name: on PostgreSQL a LIKE 'prefix%' needs the pattern
    # operator classes whatever the database's collation; SQLite reads the same indexes by range.
    __table_args__ = (
        Index("ix_subscribers_email", "email", postgresql_ops={"email": "varchar_pattern_ops"}),
        Index("ix_subscribers_first_name", func.lower(text("first_name")).label("first_name_lower"),
              postgresql_ops={"first_name_lower": "text_pattern_ops"}),
        Index("ix_subscribers_last_name", func.lower(text("last_name")).label("last_name_lower"),
              postgresql_ops={"last_name_lower": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str | None] = mapped_column(String(320))  # case-folded
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # channel -> state
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    currency: Mapped[str | None] = mapped_column(String(3))
    mrr_minor: Mapped[int] = mapped_column(BigId, default=0)
    total_paid_minor: Mapped[int] = mapped_column(BigId, default=0)
    points: Mapped[int] = mapped_column(BigId, default=0)
    tier: Mapped[str | None] = mapped_column(String(32))
    segments: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_engaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"))
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExternalId(Base):
    """A provider's id for a subscriber (customer id, contact id, ...)."""

    __tablename__ = "external_ids"
    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_external_ids"),
        # any provider's id, or the start of one, without naming the provider (console search)
        Index("ix_external_ids_external_id", "external_id", postgresql_ops={"external_id": "varchar_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Subscription(Base):
    """The latest known state of one provider subscription."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("provider", "external_id", name="uq_subscriptions"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"), index=True)
    status: Mapped[str | None] = mapped_column(String(20))
    plan: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    quantity: Mapped[int | None] = mapped_column(Integer)
    amount_minor: Mapped[int | None] = mapped_column(BigId)
    currency: Mapped[str | None] = mapped_column(String(3))
    mrr_minor: Mapped[int] = mapped_column(BigId, default=0)
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    version_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ActionStatus:
    SCHEDULED = "scheduled"  # waiting for due_at
    QUEUED = "queued"  # an RQ job points at it
    SENDING = "sending"  # a worker holds the lease
    DONE = "done"
    DRY_RUN = "dry_run"  # finished without sending: the connector has no credentials (the request is recorded)
    FAILED = "failed"  # permanent error; replayable
    DEAD = "dead"  # retries exhausted; replayable
    CANCELLED = "cancelled"  # a later event made it moot
    SUPPRESSED = "suppressed"  # recorded, never sent: throttled, capped, skipped (``suppressed`` says which)

    PENDING = (SCHEDULED, QUEUED, SENDING)
    FINISHED = (DONE, DRY_RUN, FAILED, DEAD, CANCELLED, SUPPRESSED)
    ALL = (SCHEDULED, QUEUED, SENDING, DONE, DRY_RUN, FAILED, DEAD, CANCELLED, SUPPRESSED)


class Action(Base):
    """The outbox: one planned call to a connector, unique per rule/subject/occurrence/step."""

    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_status_due", "status", "due_at"),
        Index("ix_actions_subscriber_rule", "subscriber_id", "rule_id", "status"),
        Index("ix_actions_subject_rule", "subject", "rule_id", "status"),
        Index("ix_actions_goal", "subscriber_id", "goal"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    rule_id: Mapped[str | None] = mapped_column(String(120))
    rules_hash: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(36))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    subject: Mapped[str | None] = mapped_column(String(255))
    occurrence: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[str | None] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=ActionStatus.SCHEDULED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatch_seq: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    cancelled_by: Mapped[str | None] = mapped_column(String(36))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: why it is suppressed: throttled | capped | skipped-historic | skipped-missed | no-route
    suppressed: Mapped[str | None] = mapped_column(String(24))
    #: how planning shaped it (routed, delayed by quiet hours) or why it is suppressed
    note: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str | None] = mapped_column(String(80))  # the canonical action it was routed from
    channel: Mapped[str | None] = mapped_column(String(40))  # the rule's message channel (caps)
    throttle_key: Mapped[str | None] = mapped_column(String(255))  # the throttle's key value (an invoice id)
    variant: Mapped[str | None] = mapped_column(String(40))  # the rule's split variant for this recipient
    goal: Mapped[str | None] = mapped_column(String(64))  # the event type the rule's goal waits for
    goal_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # ... until then
    converted_by: Mapped[str | None] = mapped_column(String(36))  # the goal event, once it came


class Attempt(Base):
    """One try at an action: the request as sent (secrets removed) and the response, trimmed."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | dry_run | retry | failed | dead | lost
    status_code: Mapped[int | None] = mapped_column(Integer)
    request: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    response: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    error: Mapped[str | None] = mapped_column(Text)
