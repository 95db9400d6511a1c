"""Alerts as canonical events: ``alert.raised`` and ``alert.resolved``, routed by the rules like any event.

The scheduler evaluates every ``HUB_ALERT_INTERVAL_SECONDS``. Each alert reads a value per subject
(a connector, a queue, a currency...) and compares it with two thresholds: it is raised when the value
reaches ``raise_at`` and resolved only when it is back past ``clear_at`` (hysteresis: a value hovering
around one threshold does not flap). Whether an alert is raised is read from the events table (the
latest alert event for its key), so it survives restarts and is shared by every scheduler; event ids are
deterministic (alert, subject, occurrence), so two schedulers evaluating at once record each event once.

Operational alerts (thresholds under ``alerts: operational:`` in a rules file, defaults below):

- ``dead_letters``: actions of a destination dead-lettered within ``window``;
- ``circuit_open``: a destination's circuit is open (or half-open);
- ``credentials_invalid``: a destination answered 401/403 and nothing has succeeded since;
- ``signature_failures``: webhooks of a connector refused (bad or missing signature) within ``window``;
- ``provider_silent``: no webhook from a connector for longer than ``factor`` times its longest gap among
  its last ``history`` deliveries (and at least ``minimum``);
- ``backlog_age``: the oldest waiting item of a queue (ingest, deliver-<connector>) is older than ``raise_at``.

Business alerts (``alerts: business:``) watch a KPI of the report (hub/metrics.py, per currency when
no reporting currency is set) or the share of subscribers in a segment, either as a value or as its
relative change over ``change`` (compared with the value recorded that long ago).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema
from sqlalchemy import func, or_, select

from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.values import rfc3339
from hub.store import Action, Delivery, Event, utcnow
from hub.store.models import ActionStatus, DeliveryStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub.runtime import Hub

log = logging.getLogger(__name__)

PROVIDER = "hub"
_LOCK = "hub:alerts:lock"
_REFUSED = "hub:alerts:refused:{connector}:{minute}"
_HISTORY = "hub:alerts:history:{key}"
_last_run: float | None = None


# -- configuration -------------------------------------------------------------------------------------------
def _duration(text: Any) -> float:
    """``90s``, ``15m``, ``1h``, ``7d`` or a number of seconds."""
    raw = str(text).strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        return float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        raise ValidationError("must be a duration such as 90s, 15m, 1h or 7d") from None


class Duration(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        return _duration(value)


class _Counted(Schema):
    window = Duration(load_default=3600.0)
    raise_at = fields.Float(load_default=1.0)
    clear_at = fields.Float(load_default=0.0)

    @validates_schema
    def _hysteresis(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["clear_at"] >= data["raise_at"]:
            raise ValidationError("must be below raise_at", "clear_at")


class _Signatures(_Counted):
    window = Duration(load_default=600.0)
    raise_at = fields.Float(load_default=20.0)
    clear_at = fields.Float(load_default=5.0)


class _Backlog(Schema):
    raise_at = Duration(load_default=900.0)
    clear_at = Duration(load_default=300.0)

    @validates_schema
    def _hysteresis(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["clear_at"] >= data["raise_at"]:
            raise ValidationError("must be below raise_at", "clear_at")


class _Silence(Schema):
    factor = fields.Float(load_default=3.0, validate=validate.Range(min=1.0))
    minimum = Duration(load_default=3600.0)
    history = fields.Integer(load_default=50, validate=validate.Range(min=3, max=1000))


class _Defaults(Schema):
    """Nested sections left out still get their defaults (``load_default`` alone is not loaded)."""

    @pre_load
    def _sections(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        nested = [name for name, f in self.fields.items() if isinstance(f, fields.Nested)]
        return {**{name: {} for name in nested}, **data}


class _Operational(_Defaults):
    dead_letters = fields.Nested(_Counted, load_default=dict)
    signature_failures = fields.Nested(_Signatures, load_default=dict)
    backlog_age = fields.Nested(_Backlog, load_default=dict)
    provider_silent = fields.Nested(_Silence, load_default=dict)
    circuit_open = fields.Boolean(load_default=True)
    credentials_invalid = fields.Boolean(load_default=True)


class _Business(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$"))
    description = fields.String(load_default="")
    kpi = fields.String(validate=validate.Length(min=1))
    interval = fields.String(load_default="month", validate=validate.OneOf(["day", "week", "month"]))
    segment_share = fields.String(validate=validate.Length(min=1))
    change = Duration(load_default=None, allow_none=True)
    above = fields.Float()
    below = fields.Float()
    clear_at = fields.Float()

    @validates_schema
    def _shape(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("kpi" in data) == ("segment_share" in data):
            raise ValidationError("give exactly one of kpi or segment_share", "kpi")
        if ("above" in data) == ("below" in data):
            raise ValidationError("give exactly one of above or below", "above")
        limit = data.get("above", data.get("below"))
        clear = data.get("clear_at")
        if clear is not None and ("above" in data and clear >= limit or "below" in data and clear <= limit):
            raise ValidationError("must be on the safe side of the threshold (hysteresis)", "clear_at")


class _Alerts(_Defaults):
    operational = fields.Nested(_Operational, load_default=dict)
    business = fields.List(fields.Nested(_Business), load_default=list)


@dataclass
class AlertConfig:
    operational: dict[str, Any]
    business: list[dict[str, Any]] = field(default_factory=list)


def load_config(paths: Iterable[str | Path]) -> AlertConfig:
    """The ``alerts:`` key of the rules files (defaults when none has one); ``file:line:col`` errors."""
    from hub.rules.loader import rule_files
    from hub.rules.yamlpos import LocatedError, load
    from hub.segments.config import _located

    errors: list[str] = []
    found: dict[str, Any] | None = None
    for path in rule_files(paths):
        try:
            doc = load(path.read_text(), str(path))
        except LocatedError:
            continue  # the rules loader reports it
        if not isinstance(doc.data, dict) or "alerts" not in doc.data:
            continue
        try:
            found = _Alerts().load(doc.data["alerts"] or {})
        except ValidationError as exc:
            errors.extend(_located(doc, ("alerts",), exc.messages))
    if errors:
        raise LocatedError(errors)
    found = found or _Alerts().load({})
    return AlertConfig(found["operational"], found["business"])


# -- readings ------------------------------------------------------------------------------------------------
@dataclass
class Reading:
    """One alert's value for one subject, and whether it is past the raise or the clear threshold."""

    alert: str
    subject: str
    value: float | None
    firing: bool
    clear: bool
    summary: str
    severity: str = "warning"
    kind: str = "operational"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.alert}/{self.subject}"


def note_refused(redis: Any, connector: str) -> None:
    """Count a refused webhook (per connector and minute) for ``signature_failures``."""
    key = _REFUSED.format(connector=connector, minute=int(time.time() // 60))
    try:
        with redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 86400)
            pipe.execute()
    except Exception as exc:  # Redis away: the 401 is still answered
        log.debug("refused webhook not counted (%s)", type(exc).__name__)


def backlog(session: "Session", now: datetime) -> dict[str, tuple[int, datetime | None]]:
    """Waiting work per queue: deliveries received and not processed (``ingest``), actions due and not
    yet sent (``deliver-<connector>``): (count, oldest received or due time)."""
    out: dict[str, tuple[int, datetime | None]] = {}
    n, first = session.execute(select(func.count(), func.min(Delivery.received_at))
                               .where(Delivery.status == DeliveryStatus.RECEIVED)).one()
    out["ingest"] = (n, first)
    due = or_(Action.status.in_([ActionStatus.QUEUED, ActionStatus.SENDING]),
              (Action.status == ActionStatus.SCHEDULED) & (Action.due_at <= now))
    for connector, n, first in session.execute(select(Action.connector, func.count(), func.min(Action.due_at))
                                               .where(due).group_by(Action.connector)):
        out[f"deliver-{connector}"] = (n, first)
    return out


def operational(hub: "Hub", config: AlertConfig, now: datetime) -> list[Reading]:
    import connectors
    from hub.outbound.circuit import Circuit, Credentials

    op = config.operational
    out: list[Reading] = []
    destinations = [name for name, c in connectors.REGISTRY.items() if c.actions]
    receivers = [name for name, c in connectors.REGISTRY.items() if c.receives]
    with hub.store.session() as s:
        dead = op["dead_letters"]
        counts = dict(s.execute(select(Action.connector, func.count()).where(
            Action.status == ActionStatus.DEAD, Action.updated_at >= now - timedelta(seconds=dead["window"]))
            .group_by(Action.connector)).all())
        for name in destinations:
            n = counts.get(name, 0)
            out.append(Reading("dead_letters", name, n, n >= dead["raise_at"], n <= dead["clear_at"],
                               f"{n} {name} action(s) dead-lettered in the last {_human(dead['window'])}",
                               "critical", details={"window_seconds": dead["window"]}))
        age = op["backlog_age"]
        for queue, (n, first) in backlog(s, now).items():
            seconds = (now - first).total_seconds() if first is not None else 0.0
            out.append(Reading("backlog_age", queue, seconds, seconds >= age["raise_at"],
                               seconds <= age["clear_at"],
                               f"{queue}: {n} waiting, the oldest for {_human(seconds)}",
                               details={"waiting": n}))
        silence = op["provider_silent"]
        for name in receivers:
            times = list(s.execute(select(Delivery.received_at).where(Delivery.connector == name)
                                   .order_by(Delivery.received_at.desc()).limit(silence["history"])).scalars())
            if len(times) < 3:
                continue  # no usual gap to compare with yet
            gaps = [(a - b).total_seconds() for a, b in zip(times, times[1:])]
            limit = max(silence["factor"] * max(gaps), silence["minimum"])
            quiet = (now - times[0]).total_seconds()
            out.append(Reading("provider_silent", name, quiet, quiet > limit, quiet <= limit,
                               f"no {name} webhook for {_human(quiet)} (usually at most {_human(max(gaps))} apart)",
                               details={"limit_seconds": limit}))
    sig = op["signature_failures"]
    minute = int(now.timestamp() // 60)
    minutes = range(minute - max(int(sig["window"] // 60), 1) + 1, minute + 1)
    for name in receivers:
        values = hub.redis.mget([_REFUSED.format(connector=name, minute=m) for m in minutes])
        n = sum(int(v) for v in values if v)
        out.append(Reading("signature_failures", name, n, n >= sig["raise_at"], n <= sig["clear_at"],
                           f"{n} {name} webhook(s) refused (signature) in the last {_human(sig['window'])}",
                           details={"window_seconds": sig["window"]}))
    for name in destinations:
        if op["circuit_open"]:
            state = Circuit(hub.redis).state(name)
            open_ = state["state"] != "closed"
            out.append(Reading("circuit_open", name, 1.0 if open_ else 0.0, open_, not open_,
                               f"{name} circuit {state['state']}" + (f": {state['last_error']}"
                                                                     if state.get("last_error") else ""),
                               "critical"))
        if op["credentials_invalid"]:
            invalid = Credentials(hub.redis).invalid(name)
            out.append(Reading("credentials_invalid", name, 1.0 if invalid else 0.0, bool(invalid), not invalid,
                               f"{name} credentials rejected ({(invalid or {}).get('status')})" if invalid
                               else f"{name} credentials accepted", "critical"))
    return out


def business(hub: "Hub", config: AlertConfig, now: datetime) -> list[Reading]:
    out: list[Reading] = []
    for spec in config.business:
        try:
            values = _business_values(hub, spec, now)
        except Exception as exc:  # a KPI that cannot be computed (no rate...): say so, keep evaluating
            log.warning("alert %s not evaluated: %s", spec["id"], exc)
            continue
        for subject, value in values.items():
            if spec.get("change"):
                value = _change(hub, f"{spec['id']}/{subject}", value, spec["change"], now)
            if value is None:
                continue
            above = "above" in spec
            limit = spec["above"] if above else spec["below"]
            clear = spec.get("clear_at", limit * (0.9 if above else 1.1) if limit else limit)
            firing = value > limit if above else value < limit
            cleared = value <= clear if above else value >= clear
            what = f"{spec.get('kpi') or 'share of ' + spec['segment_share']}" + (
                f" change over {_human(spec['change'])}" if spec.get("change") else "")
            out.append(Reading(spec["id"], subject, value, firing, cleared,
                               f"{spec['description'] or spec['id']}: {what} is {value:.4g} "
                               f"({'above' if above else 'below'} {limit:g} raises, {clear:g} clears)",
                               kind="business", details={"threshold": limit, "clear_at": clear}))
    return out


def _business_values(hub: "Hub", spec: dict[str, Any], now: datetime) -> dict[str, float]:
    from hub import kpis as m
    from hub.store.models import Subscriber
    from hub.store.subscriber_models import SegmentMembership

    with hub.store.session() as s:
        if spec.get("segment_share"):
            total = s.execute(select(func.count()).select_from(Subscriber).where(
                Subscriber.merged_into_id.is_(None), Subscriber.redacted_at.is_(None))).scalar_one()
            members = s.execute(select(func.count()).select_from(SegmentMembership).where(
                SegmentMembership.segment == spec["segment_share"])).scalar_one()
            return {spec["segment_share"]: members / total} if total else {}
        today = now.date()
        first = today - timedelta(days={"day": 0, "week": 6, "month": 30}[spec["interval"]])
        report = m.report(s, first, today, spec["interval"], m.Rates.from_settings(hub.settings))
    groups = {report["currency"]: report["periods"]} if "periods" in report else report["per_currency"]
    out = {}
    for currency, periods in groups.items():
        value = periods[-1].get(spec["kpi"]) if periods else None
        if isinstance(value, (int, float)):
            out[currency] = float(value)
    return out


def _change(hub: "Hub", key: str, value: float, span: float, now: datetime) -> float | None:
    """Relative change of ``value`` against the value recorded ``span`` seconds ago (None until known)."""
    history = _HISTORY.format(key=key)
    stamp = now.timestamp()
    hub.redis.zadd(history, {f"{stamp}:{value}": stamp})
    hub.redis.zremrangebyscore(history, 0, stamp - 2 * span)
    hub.redis.expire(history, int(3 * span) + 60)
    older = hub.redis.zrevrangebyscore(history, stamp - span, 0, start=0, num=1)
    if not older:
        return None
    then = float((older[0].decode() if isinstance(older[0], bytes) else older[0]).split(":", 1)[1])
    return None if then == 0 else (value - then) / abs(then)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}".rstrip("0").rstrip(".") + unit
    return f"{seconds:.0f}s"


# -- transitions ---------------------------------------------------------------------------------------------
def _states(session: "Session") -> dict[str, tuple[str, int]]:
    """Per alert key: its last event type and how many times it was raised."""
    rows = session.execute(select(Event.subject, Event.type, Event.time, Event.recorded_at).where(
        Event.provider == PROVIDER, Event.type.in_([EventType.ALERT_RAISED, EventType.ALERT_RESOLVED]))
        .order_by(Event.time, Event.recorded_at)).all()
    out: dict[str, tuple[str, int]] = {}
    for subject, type_, _, _ in rows:
        raised = out.get(subject, ("", 0))[1] + (type_ == EventType.ALERT_RAISED)
        out[subject] = (type_, raised)
    return out


def transitions(session: "Session", readings: list[Reading], now: datetime) -> list[CanonicalEvent]:
    states = _states(session)
    events = []
    for r in readings:
        last, raised = states.get(r.key, ("", 0))
        if r.firing and last != EventType.ALERT_RAISED:
            type_, occurrence = EventType.ALERT_RAISED, raised + 1
        elif r.clear and last == EventType.ALERT_RAISED:
            type_, occurrence = EventType.ALERT_RESOLVED, raised
        else:
            continue
        events.append(CanonicalEvent(
            type=type_, time=rfc3339(now), provider=PROVIDER, providereventid=f"{r.key}#{occurrence}",
            providertype=f"alert:{r.alert}", subject=r.key,
            data={"alert": {"name": r.alert, "subject": r.subject, "kind": r.kind, "severity": r.severity,
                            "state": "raised" if type_ == EventType.ALERT_RAISED else "resolved",
                            "value": r.value, "summary": r.summary, "occurrence": occurrence, **r.details}}))
    return events


def evaluate(hub: "Hub", now: datetime | None = None) -> list[CanonicalEvent]:
    """Read every alert, record the raised/resolved events (rules plan their notifications) and
    dispatch what is due. Returns the events recorded."""
    from hub.ingest.pipeline import record_events
    from hub.outbound import outbox

    now = now or utcnow()
    config = load_config(hub.settings["HUB_RULES_PATH"])
    readings = operational(hub, config, now) + business(hub, config, now)
    with hub.store.session() as session:
        events = transitions(session, readings, now)
        due = record_events(hub, session, events, origin="alert") if events else []
    for event in events:
        alert = event.data["alert"]
        log.warning("alert %s %s: %s", alert["state"], event.subject, alert["summary"])
    outbox.dispatch(hub, due)
    return events


def evaluate_if_due(hub: "Hub") -> list[CanonicalEvent] | None:
    """Called from the scheduler loop: every HUB_ALERT_INTERVAL_SECONDS, one scheduler at a time."""
    global _last_run
    every = hub.settings["HUB_ALERT_INTERVAL_SECONDS"]
    if not every or (_last_run is not None and time.monotonic() - _last_run < every):
        return None
    _last_run = time.monotonic()
    if not hub.redis.set(_LOCK, "1", nx=True, ex=max(int(every) - 1, 1)):
        return None
    return evaluate(hub)
