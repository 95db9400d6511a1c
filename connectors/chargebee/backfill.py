"""Chargebee history for ``hub backfill`` and the gap repair (connectors/sync.py says how).

- ``GET /api/v2/events`` oldest first (``sort_by[asc]=occurred_at``) for what the event log holds
  (Chargebee shows 90 days of events): the webhook's own payloads, deduplicated on the event id;
- before that, ``GET /api/v2/customers``, ``/subscriptions`` and ``/invoices``, each object turned
  into the event that announced it, only for facts older than the event log's reach.

Lists answer ``{"list": [{"<resource>": {...}, ...}], "next_offset": "..."}``; the next page is
asked with ``offset=<next_offset>`` and there is none when ``next_offset`` is absent; ``limit`` is
at most 100; timestamp filters are ``<field>[after]``/``[before]`` in Unix seconds (Chargebee API
v2 reference, "Pagination and Filtering").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from connectors.http import ApiClient
from connectors.sync import Page, Phase, Record, Source, epoch, from_epoch

PAGE_SIZE = 100
EVENTS_REACH = timedelta(days=90)


def _list(client: ApiClient, resource: str, field: str, start: datetime, end: datetime, cursor: Any
          ) -> tuple[list[dict[str, Any]], Any]:
    params: dict[str, Any] = {"limit": PAGE_SIZE, f"{field}[after]": epoch(start) - 1,  # [after] is exclusive
                              f"{field}[before]": epoch(end), "sort_by[asc]": field}
    if cursor:
        params["offset"] = cursor
    data = client.request("GET", f"/api/v2/{resource}", params=params, whole=True).data or {}
    items = [i for i in data.get("list") or [] if isinstance(i, dict)]
    return items, data.get("next_offset")


def fetch_events(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
    items, nxt = _list(client, "events", "occurred_at", start, end, cursor)
    events = [i["event"] for i in items if isinstance(i.get("event"), dict)]
    records = [Record(e["id"], e, from_epoch(e["occurred_at"])) for e in events]  # type: ignore[arg-type]
    return Page(records, nxt, records[-1].time if records else None)


def synthesized(type_: str, content: dict[str, Any], obj_id: str, at: Any) -> Record:
    """An object from a list endpoint as the event that announced it (``bf:<type>:<id>``)."""
    key = f"bf:{type_}:{obj_id}"
    return Record(key, {"id": key, "object": "event", "event_type": type_, "occurred_at": int(at),
                        "content": content}, from_epoch(at))  # type: ignore[arg-type]


def _facts(resource: str, field: str, facts: Callable[[dict[str, Any]], Iterable[Record]]
           ) -> Callable[[ApiClient, datetime, datetime, Any], Page]:
    def fetch(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
        items, nxt = _list(client, resource, field, start, end, cursor)
        # only facts before the event log's reach: later ones are read from the log itself
        records = [r for item in items for r in facts(item) if r.time < end]
        last = items[-1].get(resource.rstrip("s"), {}) if items else {}
        return Page(records, nxt, from_epoch(last.get(field)))
    return fetch


def customer_facts(item: dict[str, Any]) -> Iterable[Record]:
    customer = item["customer"]
    yield synthesized("customer_created", {"customer": customer}, customer["id"], customer["created_at"])


def subscription_facts(item: dict[str, Any]) -> Iterable[Record]:
    sub = item["subscription"]
    content = {k: item[k] for k in ("subscription", "customer") if isinstance(item.get(k), dict)}
    yield synthesized("subscription_created", content, sub["id"], sub["created_at"])
    if sub.get("status") == "cancelled" and sub.get("cancelled_at"):
        yield synthesized("subscription_cancelled", content, sub["id"], sub["cancelled_at"])


def invoice_facts(item: dict[str, Any]) -> Iterable[Record]:
    invoice = item["invoice"]
    yield synthesized("invoice_generated", {"invoice": invoice}, invoice["id"], invoice["date"])
    payments = [p for p in invoice.get("linked_payments") or [] if p.get("txn_status") == "success"]
    if invoice.get("status") == "paid" and payments and invoice.get("paid_at"):
        paid = payments[0]
        transaction = {"id": paid["txn_id"], "amount": paid.get("txn_amount"), "date": paid.get("txn_date"),
                       "status": "success", "currency_code": invoice.get("currency_code"),
                       "customer_id": invoice.get("customer_id"), "subscription_id": invoice.get("subscription_id"),
                       "linked_invoices": [{"invoice_id": invoice["id"]}]}
        yield synthesized("payment_succeeded", {"transaction": transaction, "invoice": invoice}, paid["txn_id"],
                          invoice["paid_at"])


SOURCE = Source(
    phases=(
        Phase("events", fetch_events, kind="events"),
        Phase("customers", _facts("customers", "created_at", customer_facts)),
        Phase("subscriptions", _facts("subscriptions", "created_at", subscription_facts)),
        Phase("invoices", _facts("invoices", "date", invoice_facts)),
    ),
    events_reach=EVENTS_REACH,
    page_size=PAGE_SIZE,
)
