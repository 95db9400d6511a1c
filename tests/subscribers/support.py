"""Building canonical events directly and feeding them through the pipeline (no normalizers needed)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hub.ingest.pipeline import record_events
from hub.kernel.events import CanonicalEvent
from hub.outbound import outbox
from hub.runtime import Hub

_seq = itertools.count(1)

# Segment definitions the tests rely on (independent of the shipped rules/ folder).
SEGMENTS_YAML = """
segments:
  engagement: {half_life_days: 14}
  lifecycle:
    - {id: at-risk, when: "active and (past_due or cancellation_scheduled)"}
    - {id: loyal, when: "active and tier == 'gold'"}
    - {id: engaged, when: "active and engagement >= 3"}
    - {id: subscribers, when: "active"}
  custom:
    - id: vip
      when: "mrr_minor >= 10000"
      sync:
        klaviyo: {list: "KL1", properties: [hub_vip]}
        activecampaign: {tag: "hub-vip"}
    - id: engaged-sync
      when: "lifecycle == 'engaged'"
      sync:
        hubspot: {list: "77"}
  profile_sync:
    klaviyo: {properties: {hub_tier: tier}}
loyalty: {points_per_unit: 1}
tiers:
  - {name: bronze, min_points: 0}
  - {name: silver, min_points: 100}
  - {name: gold, min_points: 1000}
"""


def rules_dir(tmp_path: Path, text: str = SEGMENTS_YAML) -> str:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "segments.yaml").write_text(text)
    return str(folder)


def ev(type_: str, time: str, provider: str = "stripe", *, pid: str | None = None, **data: Any) -> CanonicalEvent:
    return CanonicalEvent(type=type_, time=time, provider=provider, providereventid=pid or f"evt_{next(_seq)}",
                          providertype=type_, data=data)


def who(provider: str, customer: str, email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"email": email, "external_ids": {provider: customer}, **extra}


def sub(id_: str, status: str, mrr: int | None = None, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_, "status": status, **extra}
    if mrr is not None:
        out["mrr"] = {"minor": mrr, "currency": currency}
        out.setdefault("amount", {"minor": mrr, "currency": currency})
        out.setdefault("quantity", 1)
    return out


def money(minor: int, currency: str = "USD") -> dict[str, Any]:
    return {"minor": minor, "currency": currency}


def feed(hub: Hub, *events: CanonicalEvent) -> list[int]:
    """Record events in one transaction and hand due actions to the queues, like the ingest job."""
    with hub.store.session() as session:
        due = record_events(hub, session, list(events))
    outbox.dispatch(hub, due)
    return due
