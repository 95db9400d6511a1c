"""Privacy requests: erase a person's data everywhere the hub keeps it, and export what it holds.

``subscriber.redact_requested`` (Shopify ``customers/redact``, HubSpot ``contact.privacyDeletion``,
``hub privacy redact``) erases, in the ingest transaction that records the request:

- the subscriber record(s): e-mail, names, phone, timezone, attributes and consent are cleared;
  the anonymous aggregates (MRR, totals, tier) stay so reports still add up; provider ids are deleted;
- stored raw deliveries that concern the person: their values are replaced by ``[redacted]`` in the
  parsed body (JSON or form) and headers, and the delivery is marked ``redacted``;
- canonical events' data, the outbox's action params and errors, and every attempt's request and
  response: the same value scrub. A provider event id or delivery dedup key that embeds one of the
  person's identifiers is replaced by ``redacted:<sha256 of the key>``. Pending actions are cancelled. RQ jobs carry only row ids;
- rows of any other table that point at the subscriber (profiles, merges, sync state, ...);
- earlier data exports of the person.

It leaves a ``redactions`` row with hashes of the identifiers, counts and the request's event id,
and rewrites the request event itself so that it keeps no personal data either.

What "concerns the person" means: rows linked to their subscriber id(s), plus any delivery, event or
action whose stored text contains one of their identifiers (e-mail, also URL-encoded; phone; provider
ids and order ids long enough to be unambiguous). Within those rows, names are scrubbed too.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import JSON, Column, LargeBinary, String, Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from hub.kernel.events import CanonicalEvent, EventType
from hub.store import Action, Attempt, Base, Delivery, Event, ExternalId, Subscriber, Subscription, utcnow
from hub.store.models import ActionStatus, DeliveryStatus
from hub.store.privacy_models import DataExport, Redaction

REDACTED = "[redacted]"
#: keys whose value is personal whatever it is (names of fields in provider payloads and our parts)
PII_KEYS = frozenset({
    "email", "emails", "first_name", "last_name", "firstname", "lastname", "phone", "phone_number", "mobile",
    "customer_email", "customer_name", "contact_email", "address", "addresses", "address1", "address2",
    "billing_address", "shipping_address", "default_address", "billing_details", "shipping", "ip",
    "ip_address",
    "browser_ip", "$email", "$phone_number", "$first_name", "$last_name", "$address1", "$address2",
})
_MIN_ID_SEARCH = 6  # shorter provider ids ("42") are matched only as whole values, never searched for


@dataclass
class Person:
    """Who a request is about: the hub's subscriber ids and every identifier known for them."""

    subscriber_ids: set[int] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    external_ids: set[tuple[str, str]] = field(default_factory=set)  # (provider or "order", id)

    def identifiers(self) -> list[str]:
        found = {f"email:{e}" for e in self.emails} | {f"phone:{p}" for p in self.phones}
        found |= {f"{provider}:{ext}" for provider, ext in self.external_ids}
        return sorted(found)

    def needles(self) -> list[str]:
        """Lower-case strings whose presence in stored text ties a row to the person."""
        out = set()
        for email in self.emails:
            out |= {email, quote(email, safe="")}
        out |= {p for p in self.phones if len(re.sub(r"\D", "", p)) >= 7}
        out |= {ext for _, ext in self.external_ids if len(ext) >= _MIN_ID_SEARCH}
        return sorted(n.lower() for n in out if n)

    # -- scrubbing values --------------------------------------------------------------------
    def _patterns(self) -> list[re.Pattern[str]]:
        literal = [e for e in self.emails] + [quote(e, safe="") for e in self.emails] + list(self.phones)
        literal += [ext for _, ext in self.external_ids if len(ext) >= _MIN_ID_SEARCH]
        longest_first = sorted(set(literal), key=len, reverse=True)
        out = [re.compile(re.escape(v), re.IGNORECASE) for v in longest_first if v]
        out += [re.compile(rf"\b{re.escape(n)}\b", re.IGNORECASE) for n in sorted(self.names) if len(n) >= 2]
        return out

    def scrub_text(self, text: str) -> str:
        if any(text == ext for _, ext in self.external_ids):
            return REDACTED
        for pattern in self._patterns():
            text = pattern.sub(REDACTED, text)
        return text

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON value with the person's data replaced (lists drop items that were only PII)."""
        if isinstance(value, dict):
            return {k: (REDACTED if _pii_key(k) and value[k] not in (None, "", [], {}) else self.scrub(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            items = [self.scrub(v) for v in value]
            return [v for v, orig in zip(items, value) if not (v == REDACTED and orig != REDACTED)]
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, int) and not isinstance(value, bool) \
                and any(str(value) == e for _, e in self.external_ids):
            return REDACTED  # numeric ids (Shopify customer and order ids are JSON numbers)
        return value

    def scrub_key(self, key: str | None) -> str | None:
        """A provider event id or dedup key that embeds one of the person's identifiers (Shopify's
        ``customer/4211/email-consent/...``, ActiveCampaign's ``subscribe:42:3:<time>`` or
        ``subscribe:ann@example.com:...``) becomes ``redacted:<sha256 of the key>``: still unique, so
        the row keeps its place, but no longer naming anyone. Ids match as whole tokens only."""
        if not key or key.startswith("redacted:"):
            return key
        values = self.emails | self.phones | {ext for _, ext in self.external_ids}
        for value in (v for v in values if v):
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", key, re.IGNORECASE):
                return "redacted:" + hashlib.sha256(key.encode()).hexdigest()
        return key

    def scrub_body(self, body: bytes) -> bytes:
        """The raw body with the person's data replaced: parsed as JSON, else as a form, else as text."""
        text = body.decode("utf-8", errors="replace")
        try:
            return json.dumps(self.scrub(json.loads(text)), separators=(",", ":")).encode()
        except ValueError:
            pass
        if "=" in text and not text.lstrip().startswith(("{", "[")):
            try:
                pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
            except ValueError:
                pairs = []
            if pairs:
                return urlencode([(k, REDACTED if _pii_key(_last_bracket(k)) and v else self.scrub_text(v))
                                  for k, v in pairs]).encode()
        return self.scrub_text(text).encode()


def _pii_key(key: str) -> bool:
    return key.lower() in PII_KEYS


def _last_bracket(key: str) -> str:
    """``contact[email]`` -> ``email`` (ActiveCampaign's form keys)."""
    found = re.findall(r"\[([^\[\]]*)\]", key)
    return found[-1] if found else key


# -- finding the person ---------------------------------------------------------------------------

def person_from_event(session: Session, event: CanonicalEvent) -> Person:
    """The person a request event names, with everything the hub knows about them."""
    part = event.part("subscriber")
    person = Person()
    if part.get("email"):
        person.emails.add(str(part["email"]).strip().casefold())
    if part.get("phone"):
        person.phones.add(str(part["phone"]))
    for provider, ext in (part.get("external_ids") or {}).items():
        if ext not in (None, ""):
            person.external_ids.add((provider, str(ext)))
    for order in event.part("privacy").get("orders") or []:
        person.external_ids.add(("order", str(order)))
    if part.get("hub_id"):
        person.subscriber_ids.add(int(part["hub_id"]))
    return expand(session, person)


def person_from_subscriber(session: Session, subscriber_id: int) -> Person:
    return expand(session, Person(subscriber_ids={subscriber_id}))


def expand(session: Session, person: Person) -> Person:
    """Add every subscriber record the identifiers point at (merged records too) and their identifiers."""
    for _ in range(5):  # identifiers find records, records add identifiers; a few rounds settle it
        before = (len(person.subscriber_ids), len(person.emails), len(person.external_ids))
        for provider, ext in list(person.external_ids):
            person.subscriber_ids |= set(session.execute(select(ExternalId.subscriber_id).where(
                ExternalId.provider == provider, ExternalId.external_id == ext)).scalars())
        if person.emails:
            person.subscriber_ids |= set(session.execute(select(Subscriber.id).where(
                Subscriber.email.in_(sorted(person.emails)))).scalars())
        if person.subscriber_ids:
            ids = sorted(person.subscriber_ids)
            person.subscriber_ids |= set(session.execute(select(Subscriber.id).where(
                Subscriber.merged_into_id.in_(ids))).scalars())
            person.subscriber_ids |= {m for m in session.execute(select(Subscriber.merged_into_id).where(
                Subscriber.id.in_(ids))).scalars() if m}
            records = select(Subscriber).where(Subscriber.id.in_(sorted(person.subscriber_ids)))
            for row in session.execute(records).scalars():
                if row.email:
                    person.emails.add(row.email.casefold())
                if row.phone:
                    person.phones.add(row.phone)
                person.names |= {n for n in (row.first_name, row.last_name) if n}
            person.external_ids |= {(p, e) for p, e in session.execute(select(
                ExternalId.provider, ExternalId.external_id).where(
                ExternalId.subscriber_id.in_(sorted(person.subscriber_ids)))).all()}
        if (len(person.subscriber_ids), len(person.emails), len(person.external_ids)) == before:
            break
    return person


def _text(session: Session, column: Any) -> Any:
    """A column as lower-case text for substring search, on PostgreSQL and SQLite."""
    if session.get_bind().dialect.name == "postgresql" and isinstance(column.type, LargeBinary):
        return func.lower(func.encode(column, "escape"))  # bytea as text, whatever its bytes
    return func.lower(cast(column, Text))


def _mentions(session: Session, column: Any, needles: Iterable[str]) -> Any:
    needles = list(needles)
    if not needles:
        return None
    text = _text(session, column)
    return or_(*(text.contains(n, autoescape=True) for n in needles))


# -- redaction ------------------------------------------------------------------------------------

def redact(session: Session, person: Person, *, event_id: str | None = None, provider: str | None = None,
           requested_at: datetime | None = None, keep_delivery: int | None = None) -> Redaction:
    """Erase ``person`` everywhere and return the (PII-free) redaction record.

    ``keep_delivery`` names the request's own delivery: scrubbed like the others but its status is
    left to the pipeline that is processing it.
    """
    now = utcnow()
    counts: dict[str, int] = {}
    sids = sorted(person.subscriber_ids)
    needles = person.needles()

    # events: linked to the person, or mentioning them
    conditions = [Event.subscriber_id.in_(sids)] if sids else []
    mention = _mentions(session, Event.data, needles)
    if mention is not None:
        conditions.append(mention)
    events = list(session.execute(select(Event).where(or_(*conditions))).scalars()) if conditions else []
    for row in events:
        row.data = person.scrub(row.data or {})
        row.subject = person.scrub_text(row.subject) if row.subject else row.subject
        row.provider_event_id = person.scrub_key(row.provider_event_id)
    counts["events"] = len(events)

    # deliveries: those the events came from, or mentioning the person
    delivery_ids = {e.delivery_id for e in events if e.delivery_id}
    conditions = [Delivery.id.in_(sorted(delivery_ids))] if delivery_ids else []
    mention = _mentions(session, Delivery.body, needles)
    if mention is not None:
        conditions.append(mention)
    deliveries = list(session.execute(select(Delivery).where(or_(*conditions))).scalars()) \
        if conditions else []
    for row in deliveries:
        row.body = person.scrub_body(row.body or b"")
        row.headers = person.scrub(row.headers or {})
        row.error = person.scrub_text(row.error) if row.error else row.error
        row.dedup_key = person.scrub_key(row.dedup_key)
        if row.id != keep_delivery:
            row.status = DeliveryStatus.REDACTED
    counts["deliveries"] = len(deliveries)

    # actions: the person's, planned from their events, or mentioning them; pending ones are cancelled
    conditions = [Action.subscriber_id.in_(sids)] if sids else []
    if events:
        conditions.append(Action.event_id.in_([e.id for e in events]))
    mention = _mentions(session, Action.params, needles)
    if mention is not None:
        conditions.append(mention)
    actions = list(session.execute(select(Action).where(or_(*conditions))).scalars()) if conditions else []
    cancelled = 0
    for row in actions:
        row.params = person.scrub(row.params or {})
        row.subject = person.scrub_text(row.subject) if row.subject else row.subject
        row.last_error = person.scrub_text(row.last_error) if row.last_error else row.last_error
        if row.status in ActionStatus.PENDING:
            row.status = ActionStatus.CANCELLED
            row.cancelled_by = event_id
            row.last_error = "cancelled: the subscriber's data was erased"
            cancelled += 1
        row.updated_at = now
    counts["actions"], counts["actions_cancelled"] = len(actions), cancelled

    attempts = list(session.execute(select(Attempt).where(Attempt.action_id.in_([a.id for a in actions])))
                    .scalars()) if actions else []
    for attempt in attempts:
        attempt.request = person.scrub(attempt.request) if attempt.request is not None else None
        attempt.response = person.scrub(attempt.response) if attempt.response is not None else None
        attempt.error = person.scrub_text(attempt.error) if attempt.error else attempt.error
    counts["attempts"] = len(attempts)

    if sids:
        counts["external_ids"] = session.execute(delete(ExternalId).where(ExternalId.subscriber_id.in_(sids))
                                                 ).rowcount or 0
        counts["data_exports"] = session.execute(delete(DataExport).where(DataExport.subscriber_id.in_(sids))
                                                 ).rowcount or 0
        linked = select(Subscription).where(Subscription.subscriber_id.in_(sids))
        for sub in session.execute(linked).scalars():
            sub.data = person.scrub(sub.data or {})
        counts["subscribers"] = session.execute(update(Subscriber).where(Subscriber.id.in_(sids)).values(
            email=None, first_name=None, last_name=None, phone=None, timezone=None, attributes={}, consent={},
            redacted_at=now, updated_at=now)).rowcount or 0
        counts.update(_scrub_linked_tables(session, person, sids))

    identifiers = person.identifiers()
    record = Redaction(
        identifiers_hash=hashlib.sha256("\n".join(identifiers).encode()).hexdigest(),
        identifier_hashes=[identifier_hash(i) for i in identifiers], subscriber_ids=sids,
        counts={k: v for k, v in counts.items() if v}, event_id=event_id, provider=provider,
        requested_at=requested_at or now, completed_at=utcnow())
    session.add(record)
    session.flush()
    return record


def identifier_hash(identifier: str) -> str:
    """``sha256("email:ann@example.com")``: lets an operator check whether someone was erased."""
    return hashlib.sha256(identifier.encode()).hexdigest()


_HANDLED = {"events", "deliveries", "actions", "attempts", "external_ids", "subscribers", "subscriptions",
            "redactions", "data_exports"}


def _scrub_linked_tables(session: Session, person: Person, sids: list[int]) -> dict[str, int]:
    """Rows of every other table that point at the person's subscriber records (profiles, merges,
    sync state, conflicts, ... as other modules add them): their text and JSON values are scrubbed."""
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in _HANDLED:
            continue
        links = [fk.parent for fk in table.foreign_keys if fk.column.table.name == "subscribers"]
        if not links:
            continue
        key_columns = {c.name for c in table.primary_key.columns} | {c.name for c in links}
        writable = [c for c in table.columns if c.name not in key_columns and not c.foreign_keys
                    and _is_textual(c)]
        if not writable:
            continue
        changed = 0
        for row in session.execute(select(table).where(or_(*(c.in_(sids) for c in links)))).mappings():
            values = {c.name: person.scrub(row[c.name]) for c in writable if row[c.name] is not None}
            values = {k: v for k, v in values.items() if v != row[k]}
            if values:
                pk = {c.name: row[c.name] for c in table.primary_key.columns}
                where = [table.c[k] == v for k, v in pk.items()]
                session.execute(update(table).where(*where).values(**values))
                changed += 1
        if changed:
            counts[table.name] = changed
    return counts


def _is_textual(column: Column[Any]) -> bool:
    return isinstance(column.type, (String, JSON))  # Text is a String; JsonDoc is JSON (JSONB on PostgreSQL)


# -- the pipeline hooks ---------------------------------------------------------------------------

def before_apply(session: Session, event: CanonicalEvent, *, delivery_id: int | None) -> None:
    """``record_events`` calls this for every new event before identity and state see it."""
    if event.type == EventType.SUBSCRIBER_REDACT_REQUESTED:
        on_redact_requested(session, event, delivery_id=delivery_id)


def after_apply(session: Session, event: CanonicalEvent, subscriber: Subscriber | None) -> None:
    """``record_events`` calls this for every new event once its subscriber is known."""
    if event.type == EventType.SUBSCRIBER_DATA_REQUESTED and subscriber is not None:
        on_data_requested(session, event, subscriber)


def on_redact_requested(session: Session, event: CanonicalEvent, *, delivery_id: int | None) -> Redaction:
    """Called by ``record_events`` right after a ``subscriber.redact_requested`` event is inserted:
    erase the person, then strip the event (and its stored row) of the personal data it carried."""
    person = person_from_event(session, event)
    record = redact(session, person, event_id=event.id, provider=event.provider, keep_delivery=delivery_id)
    event.data = {"redaction": {"id": record.id, "identifiers_hash": record.identifiers_hash,
                                "subscribers": len(record.subscriber_ids)}}
    event.subject = None
    row = session.get(Event, event.id)
    if row is not None:
        row.data, row.subject = event.data, None
        row.subscriber_id = min(person.subscriber_ids) if person.subscriber_ids else None
    return record


def on_data_requested(session: Session, event: CanonicalEvent, subscriber: Subscriber) -> DataExport:
    """Called by ``record_events`` for ``subscriber.data_requested``: store the export it asks for."""
    row = DataExport(subscriber_id=subscriber.id, event_id=event.id, provider=event.provider,
                     document=export(session, subscriber.id), created_at=utcnow())
    session.add(row)
    session.flush()
    return row


# -- export ---------------------------------------------------------------------------------------

def export(session: Session, subscriber_id: int) -> dict[str, Any]:
    """Everything the hub holds for one person, as JSON-ready data.

    Includes the merged records, provider ids, subscriptions, canonical events, the raw deliveries
    those events came from (body as text, unless the body also carried other people's events),
    planned actions with every attempt, and rows of other tables that point at the person's records.
    """
    person = person_from_subscriber(session, subscriber_id)
    sids = sorted(person.subscriber_ids)
    subscribers = list(session.execute(select(Subscriber).where(Subscriber.id.in_(sids))).scalars())
    events = list(session.execute(select(Event).where(Event.subscriber_id.in_(sids)).order_by(Event.time))
                  .scalars())
    delivery_ids = sorted({e.delivery_id for e in events if e.delivery_id})
    deliveries = list(session.execute(select(Delivery).where(Delivery.id.in_(delivery_ids))).scalars()) \
        if delivery_ids else []
    # a body that also carried other people's events (a Klaviyo or HubSpot batch) is not handed out
    others = or_(Event.subscriber_id.is_(None), Event.subscriber_id.not_in(sids))
    shared = set(session.execute(select(Event.delivery_id).where(Event.delivery_id.in_(delivery_ids), others))
                 .scalars()) if delivery_ids else set()
    actions = list(session.execute(select(Action).where(Action.subscriber_id.in_(sids)).order_by(Action.id))
                   .scalars())
    attempts: dict[int, list[dict[str, Any]]] = {}
    if actions:
        for a in session.execute(select(Attempt).where(Attempt.action_id.in_([x.id for x in actions]))
                                 .order_by(Attempt.id)).scalars():
            attempts.setdefault(a.action_id, []).append(_row(a, exclude={"action_id"}))
    return {
        "format": "subscriber-hub-export/1",
        "exported_at": _iso(utcnow()),
        "subscriber_id": subscriber_id,
        "subscribers": [_row(s) for s in subscribers],
        "external_ids": [{"provider": p, "id": e} for p, e in sorted(person.external_ids) if p != "order"],
        "subscriptions": [_row(s) for s in session.execute(select(Subscription).where(
            Subscription.subscriber_id.in_(sids)).order_by(Subscription.id)).scalars()],
        "events": [{"id": e.id, "type": e.type, "time": _iso(e.time), "provider": e.provider,
                    "provider_type": e.provider_type, "provider_event_id": e.provider_event_id,
                    "subject": e.subject, "data": e.data} for e in events],
        "deliveries": [_delivery(d, withheld=d.id in shared) for d in deliveries],
        "actions": [{**_row(a), "attempts": attempts.get(a.id, [])} for a in actions],
        "other": _linked_rows(session, sids),
    }


def _delivery(d: Delivery, *, withheld: bool) -> dict[str, Any]:
    out = {"id": d.id, "connector": d.connector, "received_at": _iso(d.received_at), "status": d.status,
           "headers": d.headers}
    if withheld:
        out["body_withheld"] = "the body also concerns other people; see events"
    else:
        out["body"] = (d.body or b"").decode("utf-8", errors="replace")
    return out


def _linked_rows(session: Session, sids: list[int]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in _HANDLED:
            continue
        links = [fk.parent for fk in table.foreign_keys if fk.column.table.name == "subscribers"]
        if links and sids:
            query = select(table).where(or_(*(c.in_(sids) for c in links)))
            found = [{k: _jsonable(v) for k, v in r.items()} for r in session.execute(query).mappings()]
            if found:
                out[table.name] = found
    return out


def _row(obj: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    skip = set(exclude)
    return {c.key: _jsonable(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in skip}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _iso(moment: datetime | None) -> str | None:
    from hub.kernel.values import rfc3339

    return rfc3339(moment) if moment else None


def find_subscriber_id(session: Session, ref: str) -> int | None:
    """A subscriber id from ``ID`` or an e-mail address (case-folded), as the CLI takes them."""
    if ref.isdigit():
        return int(ref) if session.get(Subscriber, int(ref)) is not None else None
    return session.execute(select(Subscriber.id).where(Subscriber.email == ref.strip().casefold())
                           .order_by(Subscriber.merged_into_id.is_not(None), Subscriber.id)).scalars().first()


__all__ = ["Person", "REDACTED", "after_apply", "before_apply", "export", "find_subscriber_id",
           "identifier_hash", "on_data_requested", "on_redact_requested", "redact"]
