"""The field names a rule may read from the event's parts and the profile, so ``hub rules check``
turns a misspelled field (``subscription.stauts``) into an error with a "did you mean" instead of a
condition that is silently false.

A field is known when the canonical model names it (shared design, the profile, the derived
events) or when any provider mapping in ``mappings/`` produces it for any part. A known field that
an event lacks still reads as empty: optional fields (``subscription.cancel_at``,
``payment.next_retry_at``, ``invoice.due_at``...) stay allowed everywhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

#: the envelope, as ``event_view`` builds it
EVENT_FIELDS = frozenset({"id", "type", "time", "subject", "source", "provider", "providereventid", "providertype",
                          "data"})
#: what the canonical model names for each part (shared design; the profile as ``state.profile`` builds it)
_CANONICAL = {
    "subscriber": {"id", "email", "emails", "first_name", "last_name", "name", "phone", "timezone", "tier", "segments",
                   "points", "lifecycle", "mrr", "total_paid", "first_seen", "last_engaged", "consent",
                   "external_ids", "attributes", "locale"},
    "subscription": {"id", "status", "plan", "quantity", "amount", "mrr", "current_period_start", "current_period_end",
                     "trial_end", "trial_start", "cancel_at", "cancel_at_period_end", "cancelled_at", "cancel_reason",
                     "provider", "provider_status", "started_at", "items", "proration", "change"},
    "invoice": {"id", "status", "number", "due_at", "collection_method", "amount_due", "amount_paid", "hosted_url",
                "currency", "total", "subscription_id", "issued_at", "paid_at"},
    "payment": {"amount", "attempt", "next_retry_at", "failure_code", "failure_message", "decline_code", "invoice_id",
                "status", "id"},
    "order": {"id", "number", "amount", "total", "currency", "status", "items"},
    "usage": {"metric", "quantity", "limit", "total", "unit", "period_start", "period_end"},
    "consent": {"channel", "state", "status", "source"},
    "message": {"id", "channel", "campaign", "flow", "subject", "url", "metric"},
    "tier": {"from", "to", "points"},
    "segment": {"id", "name", "lifecycle"},
    "mrr": {"kind", "from", "to", "delta", "currency", "minor"},
}
PARTS = frozenset(_CANONICAL) | {"previous"}


@lru_cache(maxsize=4)
def _mapped(folder: str) -> frozenset[str]:
    """Every first-level field any mapping produces for any part."""
    out: set[str] = set()
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for part in (data.get("parts") or {}).values():
            if isinstance(part, dict):
                out.update(str(k) for k in part)
    return frozenset(out)


def known_fields(root: str) -> frozenset[str] | None:
    """The fields ``root`` may have, or None when any field is allowed (``vars``, ``event.data``...)."""
    from hub.kernel.mapping import folder

    if root == "event":
        return EVENT_FIELDS
    if root not in PARTS:
        return None
    mapped = _mapped(str(folder()))
    canonical = set().union(*_CANONICAL.values()) if root == "previous" else _CANONICAL[root]
    return frozenset(canonical) | mapped
