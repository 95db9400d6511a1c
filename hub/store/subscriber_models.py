"""Tables for identity, segments, sync and KPIs: merges and identity conflicts, derived profile
statistics, segment memberships, the record of what was synced to each tool, and the ledgers the
KPIs are computed from (MRR movements; trial and dunning facts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base
from hub.store.types import BigId, JsonDoc, UTCDateTime


class Merge(Base):
    """Two subscriber records found to be one person. ``moved`` lists what went from the loser to
    the winner (external ids, subscriptions, events, fields filled in) so the merge can be undone."""

    __tablename__ = "merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    winner_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    loser_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    reason: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str | None] = mapped_column(String(36))
    moved: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdentityConflict(Base):
    """Two subscribers that look like one person but cannot both be right (e.g. the same e-mail with
    different customer ids at the same provider). Listed for a human, never merged automatically."""

    __tablename__ = "identity_conflicts"
    __table_args__ = (UniqueConstraint("subscriber_id", "other_id", name="uq_identity_conflicts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    other_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProfileStats(Base):
    """Running figures the profile and segments read, kept up to date per event (and rebuilt from the
    events after a merge or unmerge): a decaying engagement score, active months, money paid per
    currency, every e-mail seen, and when each channel's consent was last set (for ordering)."""

    __tablename__ = "profile_stats"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    engagement_score: Mapped[float] = mapped_column(Float, default=0.0)
    engagement_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    engagement_count: Mapped[int] = mapped_column(Integer, default=0)
    active_months: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # "YYYY-MM", newest last, <= 13
    paid: Mapped[dict[str, int]] = mapped_column(JsonDoc, default=dict)  # currency -> minor paid, net of refunds
    emails: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # every e-mail seen, case-folded
    consent_at: Mapped[dict[str, str]] = mapped_column(JsonDoc, default=dict)  # channel -> time of its state
    lifecycle: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SegmentMembership(Base):
    """A subscriber currently in a segment (lifecycle stage or custom segment)."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_segment", "segment"),)

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(80), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncState(Base):
    """What the hub last sent to one destination for one subscriber (a list, tag or property).

    ``value`` is the desired value when the action was planned; ``generation`` grows with each
    change, so re-entering a segment plans a new action instead of colliding with the old key.
    Confirmation is the outbox action's status (``action_key``)."""

    __tablename__ = "segment_sync_state"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "target", name="uq_segment_sync_state"),
        Index("ix_segment_sync_state_target", "target"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(255))  # e.g. klaviyo:list:XyZ, activecampaign:tag:loyal
    segment: Mapped[str | None] = mapped_column(String(80))
    value: Mapped[Any] = mapped_column(JsonDoc)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    action_key: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MrrMovement(Base):
    """The MRR ledger: one row each time a subscriber's MRR in a currency moved.

    kind: new | expansion | contraction | churn | reactivation. ``delta_minor`` is signed. The KPIs
    are sums and counts over this table by period (see docs/metrics.md).

    The last six columns are derived from the subscriber's whole ledger (hub/kpis/ledger.py fills
    them in before the KPIs are read; NULL until then) so that cohort figures are plain sums too."""

    __tablename__ = "mrr_movements"
    __table_args__ = (
        UniqueConstraint("event_id", "currency", name="uq_mrr_movements_event"),
        Index("ix_mrr_movements_time", "time", "kind", "currency"),
        Index("ix_mrr_movements_subscriber", "subscriber_id", "time"),
        Index("ix_mrr_movements_underived", "subscriber_id", postgresql_where=text("paying_change IS NULL"),
              sqlite_where=text("paying_change IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    delta_minor: Mapped[int] = mapped_column(BigId)
    mrr_before_minor: Mapped[int] = mapped_column(BigId)
    mrr_after_minor: Mapped[int] = mapped_column(BigId)
    # this subscriber's MRR in this currency at the start of the row's UTC day, ISO week and month
    opening_day_minor: Mapped[int | None] = mapped_column(BigId)
    opening_week_minor: Mapped[int | None] = mapped_column(BigId)
    opening_month_minor: Mapped[int | None] = mapped_column(BigId)
    # +1: the row took the subscriber from no MRR in any currency to some; -1: back; else 0
    paying_change: Mapped[int | None] = mapped_column(Integer)
    first_payment: Mapped[bool | None] = mapped_column(Boolean)  # the subscriber's first +1
    first_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # their cohort, on every row of theirs


class KpiFact(Base):
    """Trial and dunning outcomes the KPIs count: trial_started, trial_converted, trial_lost,
    dunning_started, dunning_recovered (amount = the recovered payment), dunning_lost."""

    __tablename__ = "kpi_facts"
    __table_args__ = (
        UniqueConstraint("event_id", "kind", name="uq_kpi_facts_event"),
        Index("ix_kpi_facts_time", "time", "kind", "currency"),
        Index("ix_kpi_facts_subscription", "provider", "subscription_id", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(String(36))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigId, default=0)
