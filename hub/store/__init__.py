"""Persistence: SQLAlchemy models, the engine and session helpers."""

from .db import Store, insert_ignore, utcnow
from .models import (
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

from . import profile_models  # noqa: E402,F401  (registers the profile, segment and KPI tables)
from . import privacy_models  # noqa: E402,F401  (registers the redactions and data_exports tables)
from . import sync_models  # noqa: E402,F401  (registers the backfill_runs and webhook_registrations tables)
