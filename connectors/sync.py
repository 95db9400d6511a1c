"""What a connector's ``backfill.py`` offers the hub's backfill and gap repair (hub/backfill.py).

A provider's history is read in *phases* (its events API, then each list endpoint), each a
sequence of pages. A page is a list of ``Record``: a body shaped exactly like the webhook the
provider sends for that fact, so the connector's own normalizer turns it into canonical events,
and the key the webhook of the same fact is deduplicated on (the provider's event id). Records
read from a list endpoint have no event: their key is derived from the object (``bf:<fact>:<id>``)
and the body is a synthesized event; the mapping keys such facts on the object where a fact
happens once (a payment of an invoice, a subscription's end), so the webhook's canonical event and
the backfilled one get the same id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from connectors.http import ApiClient


@dataclass
class Record:
    key: str  # the delivery dedup key: the webhook's for the same event, or bf:<fact>:<object id>
    body: Any  # what the connector's normalizer reads: JSON (HubSpot: an array), or the raw bytes of a form
    time: datetime  # when the fact happened
    #: the webhook's headers where the normalizer reads them too (Shopify's topic is a header)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    records: list[Record]
    next: Any = None  # the token for the next page; None after the last one
    #: how far back (or forward) this page reached, for the progress estimate
    reached: datetime | None = None
    #: seconds the provider asks to wait before the next request (Shopify's query-cost bucket):
    #: the reader pauses the connector's shared bucket that long
    wait: float = 0.0


@dataclass(frozen=True)
class Phase:
    """One paged source. ``fetch(client, start, end, cursor)`` reads one page of facts in
    [start, end); ``cursor`` is None for the first page."""

    name: str
    fetch: Callable[[ApiClient, datetime, datetime, Any], Page]
    #: the part of the window this phase covers: "events" (the provider's event log) or "lists"
    #: (objects, only for what happened before the event log's reach)
    kind: str = "lists"


@dataclass(frozen=True)
class Source:
    """A connector's readable history: how far back its event log reaches, and its phases."""

    phases: tuple[Phase, ...]
    events_reach: Any  # timedelta: how long the provider keeps events readable (None: no events API)
    page_size: int = 100
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the connector's rate-limit bucket the pages count against (shared with its deliveries), and
    #: the vendor's limit for reads where the connector declares no such bucket
    bucket: str = "default"
    read_limit: tuple[tuple[int, float], ...] = ()

    def events_phase(self) -> Phase | None:
        return next((p for p in self.phases if p.kind == "events"), None)


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


@dataclass
class Endpoint:
    """The hub's webhook subscription at a provider (``hub connectors register`` / health, hub/sync.py)."""

    id: str  # what the registration is found by again (stored in webhook_registrations.remote_id)
    url: str  # where it sends ("" when missing)
    status: str  # enabled | disabled | missing | incomplete
    topics: list[str]
    secret: str | None = None  # a signing secret to store (only when the provider returns or takes one)
    detail: str | None = None  # what was done, where one registration is several subscriptions

