"""The console's pages. Filters live in the query string (bookmarkable); lists are keyset pages
(``before=`` the last row's key), so page 1000 costs what page 1 costs."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from datetime import date, timedelta
from typing import Any, Callable

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.exceptions import HTTPException

import connectors
from hub import kpis as m
from hub import queries
from hub.kernel.values import exponent
from hub.store import Delivery, Event
from hub.subscribers import identity, profile
from hub.web.console import bp, charts, data

# -- parameters -----------------------------------------------------------------------------------


class _Args(Schema):
    class Meta:
        unknown = EXCLUDE


class ListArgs(_Args):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    before = fields.Integer(load_default=None, validate=validate.Range(min=1))


class DeliveryArgs(ListArgs):
    connector = fields.String(load_default=None, validate=validate.OneOf(sorted(connectors.REGISTRY)))
    status = fields.String(load_default=None, validate=validate.OneOf(data.DELIVERY_STATUSES))


class EventArgs(_Args):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    before = fields.String(load_default=None)
    type = fields.String(load_default=None, validate=validate.Length(max=64))
    subscriber = fields.Integer(load_default=None)
    delivery = fields.Integer(load_default=None)


class ActionArgs(ListArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(data.ACTION_STATUSES))
    connector = fields.String(load_default=None, validate=validate.OneOf(sorted(connectors.REGISTRY)))
    rule = fields.String(load_default=None, validate=validate.Length(max=120))
    subscriber = fields.Integer(load_default=None)


class SubscriberArgs(ListArgs):
    q = fields.String(load_default=None, validate=validate.Length(max=320))


class KpiArgs(_Args):
    start = fields.Date(data_key="from", load_default=None)
    end = fields.Date(data_key="to", load_default=None)
    interval = fields.String(load_default="month", validate=validate.OneOf(m.INTERVALS))
    currency = fields.String(load_default=None, validate=validate.Length(equal=3))


class SimulateArgs(_Args):
    rules = fields.String(load_default=None)
    days = fields.Integer(load_default=7, validate=validate.Range(1, 90))


class IdsForm(_Args):
    ids = fields.List(fields.Integer(validate=validate.Range(min=1)), load_default=list)


def _load(schema: Schema, source: Any) -> dict[str, Any]:
    """Parameters through their schema; a bad one is a 400 naming it. Empty form fields count as unset."""
    raw = {k: (source.getlist(k) if k == "ids" else v) for k, v in source.items() if v != ""}
    try:
        return schema.load(raw)
    except ValidationError as exc:
        abort(400, "; ".join(f"{name}: {' '.join(map(str, msgs if isinstance(msgs, list) else [msgs]))}"
                             for name, msgs in exc.normalized_messages().items()))


def _hub() -> Any:
    return current_app.extensions["hub"]


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> Any:
    return render_template("console/error.html", error=exc), exc.code


# -- formatting -----------------------------------------------------------------------------------

def money(minor: int | None, currency: str | None) -> str:
    if minor is None:
        return "-"
    if not currency:
        return str(minor)
    digits = exponent(currency)
    return f"{minor / 10 ** digits:,.{digits}f} {currency}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def pretty_body(body: bytes | None) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", errors="replace")
    try:
        return pretty(json.loads(text))
    except ValueError:
        return text


def relative(path: str) -> str:
    """A source location under the working directory, shown relative to it (``rules/x.yaml:3:5``)."""
    here = os.getcwd().rstrip("/") + "/"
    return path[len(here):] if path.startswith(here) else path


bp.add_app_template_filter(pretty, "pretty")
bp.add_app_template_filter(relative, "relative")
bp.add_app_template_global(money, "money")
bp.add_app_template_global(pct, "pct")
bp.add_app_template_global(ago, "ago")


@bp.app_template_global()
def page_url(**changes: Any) -> str:
    """This page's URL with some query parameters changed (None drops one)."""
    args = request.args.to_dict()
    args.update({k: v for k, v in changes.items()})
    return url_for(request.endpoint or "console.overview", **(request.view_args or {}),
                   **{k: v for k, v in args.items() if v not in (None, "")})


# -- overview -------------------------------------------------------------------------------------

def _kpi_range(args: dict[str, Any]) -> tuple[date, date]:
    last = args.get("end") or date.today()
    first = args.get("start") or (last.replace(day=1) - timedelta(days=335)).replace(day=1)
    return first, last


def _kpi_report(first: date, last: date, interval: str) -> dict[str, Any]:
    hub = _hub()
    with hub.store.session() as session:
        return m.report(session, first, last, interval, m.Rates.from_settings(hub.settings))


def _blocks(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {report["currency"]: report["periods"]} if "currency" in report else report["per_currency"]


HEADLINE_SECONDS = 60


def _headline_kpis() -> tuple[Any, str | None]:
    """The overview's 12 months of KPIs, computed at most once a minute per process (the page
    refreshes itself; the ledger's figures move by the day)."""
    cached = current_app.extensions.get("console.headlines")
    if cached and time.monotonic() - cached[0] < HEADLINE_SECONDS:
        return cached[1], cached[2]
    kpis, error = None, None
    try:
        kpis = _blocks(_kpi_report(*_kpi_range({}), "month"))
    except m.MetricsError as exc:
        error = str(exc)
    current_app.extensions["console.headlines"] = (time.monotonic(), kpis, error)
    return kpis, error


@bp.get("/")
def overview() -> Any:
    hub = _hub()
    refresh = request.args.get("refresh", 30, type=int)
    with hub.store.session() as session:
        backlog = data.queue_backlog(hub, session)
        hourly = data.webhooks_by_hour(session)
        attention = data.attention(session)
    kpis, kpi_error = _headline_kpis()
    return render_template("console/overview.html", health=data.health(hub), backlog=backlog, hourly=hourly,
                           attention=attention, kpis=kpis, kpi_error=kpi_error, sparkline=charts.sparkline,
                           refresh=max(refresh, 5) if refresh else 0)


# -- deliveries -----------------------------------------------------------------------------------

@bp.get("/deliveries")
def deliveries() -> Any:
    args = _load(DeliveryArgs(), request.args)
    with _hub().store.session() as session:
        page = data.deliveries(session, connector=args["connector"], status=args["status"], before=args["before"],
                               limit=args["limit"])
    return render_template("console/deliveries.html", page=page, args=args,
                           connector_names=sorted(n for n, c in connectors.REGISTRY.items() if c.receives),
                           statuses=data.DELIVERY_STATUSES)


@bp.get("/deliveries/<int:delivery_id>")
def delivery(delivery_id: int) -> Any:
    with _hub().store.session() as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            abort(404, f"No delivery {delivery_id}.")
        info = queries.DeliveryOut().dump(row)
        headers, body = dict(row.headers or {}), pretty_body(row.body)
        produced = data.events(session, type_=None, subscriber_id=None, delivery_id=delivery_id, before=None,
                               limit=100)
    return render_template("console/delivery.html", d=info, headers=headers, body=body, events=produced.rows)


@bp.post("/deliveries/replay")
def replay_deliveries() -> Any:
    hub = _hub()
    form = _load(IdsForm(), request.form)
    ids = form["ids"]
    if not ids:
        connector = request.form.get("connector") or None
        if connector is not None and connector not in connectors.REGISTRY:
            abort(400, "connector: not a known connector")
        with hub.store.session() as session:
            ids = data.filtered_failed_deliveries(session, connector)
    count = queries.replay_deliveries(hub, ids)["replayed"] if ids else 0
    flash(f"Replayed {count} failed deliver{'y' if count == 1 else 'ies'}: queued for processing again.")
    return redirect(_back(url_for("console.deliveries", status="failed")))


def _back(default: str) -> str:
    target = request.form.get("back", "")
    return target if target.startswith("/") and not target.startswith("//") else default


# -- events ---------------------------------------------------------------------------------------

@bp.get("/events")
def events() -> Any:
    args = _load(EventArgs(), request.args)
    before = None
    if args["before"]:
        try:
            before = data.parse_event_cursor(args["before"])
        except ValueError:
            abort(400, "before: not a page cursor from this page (time|id)")
    with _hub().store.session() as session:
        page = data.events(session, type_=args["type"], subscriber_id=args["subscriber"],
                           delivery_id=args["delivery"], before=before, limit=args["limit"])
    return render_template("console/events.html", page=page, args=args)


@bp.get("/events/<event_id>")
def event(event_id: str) -> Any:
    with _hub().store.session() as session:
        row = session.get(Event, event_id)
        if row is None:
            abort(404, f"No event {event_id}.")
        info = queries.EventOut().dump(row)
    envelope = {k: v for k, v in info.items() if k != "data"}
    return render_template("console/event.html", e=info, envelope=envelope)


# -- actions --------------------------------------------------------------------------------------

@bp.get("/actions")
def actions() -> Any:
    args = _load(ActionArgs(), request.args)
    with _hub().store.session() as session:
        page = data.actions(session, status=args["status"], connector=args["connector"], rule=args["rule"],
                            subscriber_id=args["subscriber"], before=args["before"], limit=args["limit"])
    return render_template("console/actions.html", page=page, args=args, statuses=data.ACTION_STATUSES,
                           connector_names=sorted(n for n, c in connectors.REGISTRY.items() if c.actions))


@bp.get("/actions/<int:action_id>")
def action(action_id: int) -> Any:
    from hub.rules.explain import explain, render_text

    hub = _hub()
    with hub.store.session() as session:
        info = data.action(session, action_id)
    if info is None:
        abort(404, f"No action {action_id}.")
    why = explain(hub, action_id)
    return render_template("console/action.html", a=info, why=why, why_text=render_text(why) if why else "",
                           replayable=info["status"] in ("failed", "dead"),
                           cancellable=info["status"] in data.CANCELLABLE)


@bp.post("/actions/replay")
def replay_actions() -> Any:
    ids = _load(IdsForm(), request.form)["ids"]
    count = queries.replay_actions(_hub(), ids)["replayed"] if ids else 0
    flash(f"Replayed {count} action{'' if count == 1 else 's'} with a fresh retry budget.")
    return redirect(_back(url_for("console.actions")))


@bp.post("/actions/cancel")
def cancel_actions() -> Any:
    ids = _load(IdsForm(), request.form)["ids"]
    count = data.cancel_actions(_hub(), ids)
    flash(f"Cancelled {count} action{'' if count == 1 else 's'}."
          + ("" if count == len(ids) else " Actions already being sent or finished are left as they are."))
    return redirect(_back(url_for("console.actions")))


# -- subscribers ----------------------------------------------------------------------------------

@bp.get("/subscribers")
def subscribers() -> Any:
    args = _load(SubscriberArgs(), request.args)
    with _hub().store.session() as session:
        page = data.subscribers(session, q=args["q"], before=args["before"], limit=args["limit"])
    if args["q"] and len(page.rows) == 1 and not args["before"]:
        return redirect(url_for("console.subscriber", subscriber_id=page.rows[0]["id"]))
    return render_template("console/subscribers.html", page=page, args=args)


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber(subscriber_id: int) -> Any:
    with _hub().store.session() as session:
        found = profile.show(session, subscriber_id, timeline=50)
        if found is None:
            abort(404, f"No subscriber {subscriber_id}.")
        if found["id"] != subscriber_id:  # merged away: show the record it lives on in
            return redirect(url_for("console.subscriber", subscriber_id=found["id"]))
        sent = data.actions(session, status=None, connector=None, rule=None, subscriber_id=subscriber_id,
                            before=None, limit=50).rows
    timeline = sorted([{"time": e["time"], "kind": "event", "what": e["type"], "summary": e["summary"],
                        "link": url_for("console.event", event_id=e["id"])} for e in found["timeline"]]
                      + [{"time": a["due_at"], "kind": "action", "what": a["action"],
                          "summary": f"{a['status']} (rule {a['rule_id'] or '-'})",
                          "link": url_for("console.action", action_id=a["id"])} for a in sent],
                      key=lambda item: item["time"], reverse=True)
    return render_template("console/subscriber.html", p=found, timeline=timeline)


@bp.post("/subscribers/<int:subscriber_id>/unmerge")
def unmerge(subscriber_id: int) -> Any:
    merge_id = request.form.get("merge", type=int)
    if not merge_id:
        abort(400, "merge: which merge to undo")
    with _hub().store.session() as session:
        try:
            winner, loser = identity.unmerge(session, merge_id)
        except identity.ProfileError as exc:
            abort(409, str(exc))
        flash(f"Merge {merge_id} undone: subscribers {winner.id} and {loser.id} are kept apart from now on.")
    return redirect(url_for("console.subscriber", subscriber_id=subscriber_id))


# -- rules ----------------------------------------------------------------------------------------

@bp.get("/rules")
def rules() -> Any:
    from hub.rules.loader import as_paths

    hub = _hub()
    ruleset = hub.rules
    errors = _load_errors(as_paths(hub.settings["HUB_RULES_PATH"]))
    args = _load(SimulateArgs(), request.args)
    simulation = _simulate(hub, ruleset, args) if args["rules"] else None
    return render_template("console/rules.html", ruleset=ruleset, errors=errors, args=args, simulation=simulation)


_checked: dict[tuple[Any, ...], list[str]] = {}
_checked_lock = threading.Lock()


def _load_errors(paths: list[Any]) -> list[str]:
    """The errors of the rules files as they are on disk now (the rules in force are the last good
    ones), checked again only when a file changed."""
    from hub.rules import LocatedError, load_rules
    from hub.rules.loader import rule_files

    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in rule_files(paths))
    with _checked_lock:
        if stamp not in _checked:
            try:
                load_rules(paths)
                _checked[stamp] = []
            except LocatedError as exc:
                _checked[stamp] = list(exc.errors)
            if len(_checked) > 16:
                _checked.pop(next(iter(_checked)))
        return _checked[stamp]


def _simulate(hub: Any, ruleset: Any, args: dict[str, Any]) -> dict[str, Any]:
    """What the candidate rules folder would plan over the last N days of stored events, against
    what the rules in force would plan for the same events (both dry-run, nothing stored)."""
    from hub.rules import LocatedError, load_rules
    from hub.simulate import simulate, stored_events
    from hub.store import utcnow

    try:
        candidate = load_rules([args["rules"]])
    except LocatedError as exc:
        return {"errors": list(exc.errors)}
    except (OSError, ValueError) as exc:
        return {"errors": [f"{args['rules']}: {exc}"]}
    events_ = stored_events(hub, utcnow() - timedelta(days=args["days"]))

    def keyed(ruleset_: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
        out = {}
        for item in simulate(events_, ruleset_):
            d = item.to_dict()
            out[(d["rule"], d["action"], d["subject"], d["step"], d["event"])] = d
        return out

    now_, then = keyed(ruleset), keyed(candidate)
    added = [then[k] for k in then if k not in now_]
    removed = [now_[k] for k in now_ if k not in then]
    changed = [{"before": now_[k], "after": then[k]} for k in now_.keys() & then.keys()
               if (now_[k]["status"], now_[k]["due_at"], now_[k]["params"]) !=
               (then[k]["status"], then[k]["due_at"], then[k]["params"])]
    return {"errors": [], "events": len(events_), "current": len(now_), "candidate": len(then), "added": added,
            "removed": removed, "changed": changed, "hash": candidate.hash}


# -- segments -------------------------------------------------------------------------------------

@bp.get("/segments")
def segments() -> Any:
    from hub.segments import config as config_mod

    hub = _hub()
    config = config_mod.current(hub.settings["HUB_RULES_PATH"])
    with hub.store.session() as session:
        sizes = data.segment_sizes(session)
        history = data.segment_history(session, sizes)
        sync = data.sync_states(session)
    return render_template("console/segments.html", config=config, sizes=sizes, sync=sync, history=history,
                           last=data.last_reconcile(hub), sparkline=charts.sparkline)


@bp.post("/segments/reconcile")
def reconcile() -> Any:
    from hub.segments.sync import reconcile as run

    hub = _hub()
    repair = request.form.get("repair") == "1"
    report = run(hub, repair=repair)
    data.save_reconcile(hub, report, repair)
    flash(f"Reconciled: {report['checked']} checked, {len(report['drift'])} drifted"
          + (f", {report['repaired']} repair actions planned." if repair else "."))
    return redirect(url_for("console.segments"))


# -- KPIs -----------------------------------------------------------------------------------------

CSV_CHARTS: dict[str, list[tuple[str, Callable[[dict[str, Any]], Any]]]] = {
    "mrr": [("mrr_start", lambda p: p["mrr_start"]), ("mrr", lambda p: p["mrr"]), ("arr", lambda p: p["arr"])],
    "movements": [(k, lambda p, k=k: p["movements"][k]) for k in (*m.MOVEMENTS, "net")],
    "churn": [(k, lambda p, k=k: p[k]) for k in ("active_start", "active", "new_subscribers", "churned_subscribers",
                                                  "customer_churn_rate", "revenue_churn_rate",
                                                  "net_revenue_retention", "new_member_growth_rate")],
    "value": [(k, lambda p, k=k: p[k]) for k in ("arpa", "clv")],
    "trials": [(k, lambda p, k=k: p[k]) for k in ("trials_started", "trials_converted", "trial_conversion_rate")],
    "dunning": [(k, lambda p, k=k: p[k]) for k in ("dunning_started", "dunning_recovered", "dunning_recovery_rate",
                                                    "recovered_revenue")],
}


def _kpi_periods(args: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[str], list[dict[str, Any]]]:
    first, last = _kpi_range(args)
    try:
        report = _kpi_report(first, last, args["interval"])
    except m.MetricsError as exc:
        abort(400, str(exc))
    blocks = _blocks(report)
    currency = (args["currency"] or "").upper() or next(iter(blocks), None)
    if blocks and currency not in blocks:
        abort(400, f"currency: no figures in {currency} (have {', '.join(blocks)})")
    return report, currency, list(blocks), blocks.get(currency or "", [])


def _aging_and_cohorts(report: dict[str, Any], *, with_cohorts: bool) -> tuple[Any, Any]:
    from hub.kpis import aging as aging_mod
    from hub.kpis import cohorts as cohorts_mod
    from hub.store import utcnow

    start, end = date.fromisoformat(report["from"]), date.fromisoformat(report["to"])
    with _hub().store.session() as session:
        aging = aging_mod.dunning_aging(session, utcnow())
        table = cohorts_mod.cohorts(session, start, end)["cohorts"] if with_cohorts else None
    if table is not None:  # every month of the range gets its row, an empty cohort too
        found = {row["cohort"]: row for row in table}
        span = cohorts_mod.months(start, end)
        table = [found.get(d.strftime("%Y-%m")) or {"cohort": d.strftime("%Y-%m"), "size": 0,
                                                   "retained": [0] * (len(span) - i), "retention": [None] * (len(span) - i)}
                 for i, d in enumerate(span)]
    return aging, table


@bp.get("/kpis")
def kpis() -> Any:
    args = _load(KpiArgs(), request.args)
    report, currency, currencies, periods = _kpi_periods(args)
    fmt = (lambda v: money(int(v), currency)) if currency else str
    aging, cohort_table = _aging_and_cohorts(report, with_cohorts=request.args.get("cohorts") == "1")
    return render_template("console/kpis.html", report=report, currency=currency, currencies=currencies,
                           periods=periods, args=args, charts=CSV_CHARTS, aging=aging, cohorts=cohort_table,
                           movements_chart=charts.movements(periods, fmt),
                           mrr_chart=charts.line(periods, "mrr", "MRR", fmt))


@bp.get("/kpis.csv")
def kpis_csv() -> Any:
    args = _load(KpiArgs(), request.args)
    chart = request.args.get("chart", "movements")
    if chart not in (*CSV_CHARTS, "aging", "cohorts"):
        abort(400, f"chart: one of {', '.join((*CSV_CHARTS, 'aging', 'cohorts'))}")
    report, currency, _, periods = _kpi_periods(args)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if chart in CSV_CHARTS:
        writer.writerow(["start", "end", "currency", *(name for name, _ in CSV_CHARTS[chart])])
        for p in periods:
            writer.writerow([p["start"], p["end"], currency, *("" if (v := f(p)) is None else v
                                                               for _, f in CSV_CHARTS[chart])])
    else:
        aging, table = _aging_and_cohorts(report, with_cohorts=chart == "cohorts")
        if chart == "aging":
            codes = sorted({c for row in aging for c in row["amounts"]})
            writer.writerow(["age", "open_cases", *(f"amount_{c}" for c in codes)])
            for row in aging:
                writer.writerow([row["bucket"], row["cases"], *(row["amounts"].get(c, 0) for c in codes)])
        else:
            writer.writerow(["cohort", "subscribers", *(f"month_{k}" for k in range(len(table or [])))])
            for row in table or []:
                writer.writerow([row["cohort"], row["size"], *row["retained"]])
    name = f"hub-{chart}-{report['from']}-{report['to']}-{report['interval']}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- connectors -----------------------------------------------------------------------------------

@bp.get("/connectors", endpoint="connectors")
def connectors_page() -> Any:
    from hub.cli.connectors import connector_status

    hub = _hub()
    rows = [connector_status(hub, c) for c in connectors.REGISTRY.values()]
    use: dict[str, Any] = {}
    for c in connectors.REGISTRY.values():
        if c.actions and isinstance(next((r for r in rows if r["name"] == c.name), {}).get("rate_limit"), dict):
            try:
                use[c.name] = data.rate_limit_use(hub, c)
            except Exception:  # Redis away: the status column already says so
                pass
    with hub.store.session() as session:
        last = data.last_webhooks(session, [r["name"] for r in rows])
    return render_template("console/connectors.html", rows=rows, last=last, use=use)

