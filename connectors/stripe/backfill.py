"""Stripe history for ``hub backfill`` and the gap repair (connectors/sync.py says how).

- ``GET /v1/events`` for what its log still holds (Stripe guarantees 30 days): the very objects the
  webhooks carry, deduplicated on the same event id;
- before that, ``GET /v1/customers``, ``/v1/subscriptions`` (``status=all``: the default leaves
  cancelled ones out), ``/v1/invoices`` and ``/v1/charges``, each object turned into the event that
  announced it, only for facts older than the event log's reach (newer ones come from the log).

Every list is newest first, ``limit`` at most 100, paged with ``starting_after=<last id>`` while
``has_more``; ``created[gte]``/``created[lt]`` bound the window (Stripe API reference, "Pagination"
and each list endpoint).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from connectors.http import ApiClient
from connectors.sync import Page, Phase, Record, Source, epoch, from_epoch
from hub.kernel.mapping import table

PAGE_SIZE = 100
EVENTS_REACH = timedelta(days=30)


def mapped_types() -> list[str]:
    """The event types the hub maps: what the events API is asked for (``types[]``, at most 20)."""
    return sorted(table("stripe").events)


def _list(client: ApiClient, path: str, start: datetime, end: datetime, cursor: Any,
          extra: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], Any]:
    params: dict[str, Any] = {"limit": PAGE_SIZE, "created[gte]": epoch(start), "created[lt]": epoch(end),
                              **(extra or {})}
    if cursor:
        params["starting_after"] = cursor
    data = client.request("GET", path, params=params, whole=True).data or {}
    items = [o for o in data.get("data") or [] if isinstance(o, dict)]
    return items, (items[-1]["id"] if data.get("has_more") and items else None)


def fetch_events(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
    types = mapped_types()
    # Stripe filters by at most 20 types; past that the page is read whole and filtered here
    extra = {"types[]": types} if len(types) <= 20 else {}
    items, nxt = _list(client, "/v1/events", start, end, cursor, extra)
    records = [Record(e["id"], e, from_epoch(e["created"])) for e in items  # type: ignore[arg-type]
               if e.get("type") in types]
    return Page(records, nxt, records[-1].time if records else None)


def synthesized(type_: str, obj: dict[str, Any], at: Any, key: str | None = None) -> Record:
    """An object from a list endpoint as the event that announced it (``bf:<type>:<id>``)."""
    key = key or f"bf:{type_}:{obj['id']}"
    body = {"id": key, "object": "event", "type": type_, "created": int(at), "livemode": obj.get("livemode"),
            "data": {"object": obj}}
    return Record(key, body, from_epoch(at))  # type: ignore[arg-type]


def _facts(path: str, facts: Callable[[dict[str, Any]], Iterable[Record]], extra: dict[str, Any] | None = None
           ) -> Callable[[ApiClient, datetime, datetime, Any], Page]:
    def fetch(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
        items, nxt = _list(client, path, start, end, cursor, extra)
        # only facts before the event log's reach: later ones are read from the log itself
        records = [r for obj in items for r in facts(obj) if r.time < end]
        return Page(records, nxt, from_epoch(items[-1]["created"]) if items else None)
    return fetch


def customer_facts(obj: dict[str, Any]) -> Iterable[Record]:
    yield synthesized("customer.created", obj, obj["created"])


def subscription_facts(obj: dict[str, Any]) -> Iterable[Record]:
    yield synthesized("customer.subscription.created", obj, obj["created"])
    if obj.get("status") in ("canceled", "incomplete_expired") and obj.get("ended_at"):
        yield synthesized("customer.subscription.deleted", obj, obj["ended_at"])


def invoice_facts(obj: dict[str, Any]) -> Iterable[Record]:
    if not obj.get("customer"):
        return
    paid_at = (obj.get("status_transitions") or {}).get("paid_at")
    if obj.get("status") == "paid" and paid_at:
        yield synthesized("invoice.paid", obj, paid_at)
    elif obj.get("status") == "open" and obj.get("attempted") and obj.get("charge"):
        yield synthesized("invoice.payment_failed", obj, obj["created"])


def charge_facts(obj: dict[str, Any]) -> Iterable[Record]:
    if obj.get("status") == "failed":
        yield synthesized("charge.failed", obj, obj["created"])
    if obj.get("amount_refunded"):
        # one record for what was refunded by the time of reading (a refund's own time is not listed)
        yield synthesized("charge.refunded", obj, obj["created"],
                          key=f"bf:charge.refunded:{obj['id']}:{obj['amount_refunded']}")


SOURCE = Source(
    phases=(
        Phase("events", fetch_events, kind="events"),
        Phase("customers", _facts("/v1/customers", customer_facts)),
        Phase("subscriptions", _facts("/v1/subscriptions", subscription_facts, {"status": "all"})),
        Phase("invoices", _facts("/v1/invoices", invoice_facts)),
        Phase("charges", _facts("/v1/charges", charge_facts)),
    ),
    events_reach=EVENTS_REACH,
    page_size=PAGE_SIZE,
)
