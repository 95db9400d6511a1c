"""Persistence: SQLAlchemy models, the engine and session helpers."""

from hub.store.db import Store, insert_ignore, utcnow
from hub.store.models import (
    Action,
    Attempt,
    Base,
    Delivery,
    Event,
    ExternalId,
    Subscriber,
    Subscription,
)

__all__ = [
    "Action",
    "Attempt",
    "Base",
    "Delivery",
    "Event",
    "ExternalId",
    "Store",
    "Subscriber",
    "Subscription",
    "insert_ignore",
    "utcnow",
]

from hub.store import (
    change_models,  # noqa: E402,F401  (registers the change_batches and change_batch_rows tables)
    privacy_models,  # noqa: E402,F401  (registers the redactions and data_exports tables)
    sync_models,  # noqa: E402,F401  (registers the backfill_runs and webhook_registrations tables)
)
from hub.store import subscriber_models as profile_models  # noqa: E402,F401  (registers the profile, segment and KPI tables)
