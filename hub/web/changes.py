"""Subscription changes over HTTP: the admin API (``/api/subscriptions/<ref>/changes``, previews,
self-service links, ``/api/changes/batches``) and the self-service page a link opens (``/self-service/<token>``)."""

from __future__ import annotations

import csv
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template_string, request, url_for
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.exceptions import HTTPException

from hub.changes import apply, batch, links
from hub.changes.preview import PreviewError, describe, preview, provider_preview
from hub.changes.request import CHANGES, ChangeRequest, problems
from hub.store import utcnow
from hub.web.auth import require_admin
from hub.web.schemas import ErrorOut, accepts, bad_request

api = Blueprint("changes", __name__, url_prefix="/api")
api.before_request(require_admin)
page = Blueprint("self_service", __name__)


def _hub() -> Any:
    return current_app.extensions["hub"]


def _load(schema: Schema, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    try:
        return schema.load(body)
    except ValidationError as exc:
        abort(400, problems(exc))


def _preview(ref: str, req: dict[str, Any]) -> dict[str, Any]:
    with _hub().store.session() as session:
        try:
            sub = apply.find(session, ref)
            shown = preview(session, sub, req, utcnow())
            theirs = provider_preview(_hub().settings, sub, req, shown)
            return {**shown, "provider_preview": theirs} if theirs is not None else shown
        except LookupError as exc:
            abort(404, str(exc))
        except (PreviewError, apply.ChangeError) as exc:
            abort(400, str(exc))


@api.post("/subscriptions/<ref>/changes")
def create(ref: str) -> Any:
    """Plan a change (or, with ``?preview=true``, only say what it would do)."""
    req = _load(ChangeRequest(), request.get_json(silent=True))
    if request.args.get("preview", "").lower() in ("1", "true", "yes"):
        return jsonify(_preview(ref, req))
    try:
        found, new = apply.submit(_hub(), ref, req)
    except LookupError as exc:
        abort(404, str(exc))
    except (PreviewError, apply.ChangeError) as exc:
        abort(400, str(exc))
    return jsonify(found), 201 if new else 200


@api.get("/subscriptions/<ref>/changes/<int:change_id>")
def show(ref: str, change_id: int) -> Any:
    try:
        return jsonify(apply.outcome(_hub(), change_id, ref))
    except LookupError as exc:
        abort(404, str(exc))
    except apply.ChangeError as exc:
        abort(400, str(exc))


class _LinkRequest(Schema):
    allowed = fields.List(fields.String(validate=validate.OneOf(CHANGES)), load_default=lambda: ["pause", "cancel"],
                          validate=validate.Length(min=1))
    expires_in = fields.Integer(load_default=86400, validate=validate.Range(min=60, max=links.MAX_LIFETIME))


@api.post("/subscriptions/<ref>/self-service-links")
def make_link(ref: str) -> Any:
    hub = _hub()
    secret = hub.settings["HUB_SELF_SERVICE_SECRET"]
    if not secret:
        abort(409, "set HUB_SELF_SERVICE_SECRET to issue self-service links")
    req = _load(_LinkRequest(), request.get_json(silent=True) or {})
    with hub.store.session() as session:
        try:
            sub = apply.find(session, ref)
        except LookupError as exc:
            abort(404, str(exc))
        except apply.ChangeError as exc:
            abort(400, str(exc))
        token = links.make(secret, sub.subscriber_id, f"{sub.provider}:{sub.external_id}", req["allowed"],
                           req["expires_in"])
    base = (hub.settings["HUB_PUBLIC_URL"] or request.host_url.rstrip("/"))
    return jsonify({"url": f"{base}{url_for('self_service.view', token=token)}",
                    "expires_in": req["expires_in"], "allowed": sorted(set(req["allowed"]))}), 201


def _claims(token: str) -> links.Claims:
    secret = _hub().settings["HUB_SELF_SERVICE_SECRET"]
    if not secret:
        abort(404)
    try:
        claims = links.read(secret, token)
    except links.LinkError as exc:
        abort(403, str(exc))
    if links.was_used(_hub().redis, claims):
        abort(403, "this link was already used")
    return claims


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your subscription</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{padding:.25rem .75rem .25rem 0;text-align:left}
fieldset{margin:1rem 0}button{font:inherit;padding:.5rem 1rem}.note{color:#555}</style></head>
<body><main>
<h1>Your subscription</h1>
{% if done %}<p role="status" id="done">Done: your {{ done.change.replace('_', ' ') }} is {{ 'recorded' if done.status != 'failed' else 'refused' }}
 (reference {{ done.id }}).</p>{% endif %}
<table><tr><th scope="row">Plan</th><td id="plan">{{ s.plan or '-' }}</td></tr>
<tr><th scope="row">Status</th><td id="status">{{ s.status or '-' }}</td></tr>
<tr><th scope="row">Charge per period</th><td id="charge">{{ money(s.charge_per_period) }} {{ s.currency or '' }}</td></tr>
<tr><th scope="row">Current period ends</th><td>{{ (s.period[1] or '-')[:10] }}</td></tr></table>
{% if review %}
<section id="preview" aria-labelledby="preview-title"><h2 id="preview-title">Before you confirm</h2>
<table><tr><th scope="row">Change</th><td id="preview-change">{{ review.change.replace('_', ' ') }}</td></tr>
<tr><th scope="row">Takes effect</th><td id="preview-effective">{{ review.effective_at[:10] }}</td></tr>
<tr><th scope="row">Charge per period</th><td id="preview-charge">{{ money(review.charge_per_period.before) }} &rarr; {{ money(review.charge_per_period.after) }} {{ review.charge_per_period.currency or '' }}</td></tr>
{% if review.proration %}<tr><th scope="row">{{ 'You pay now' if review.proration.amount.minor >= 0 else 'Credited to you' }}</th>
<td id="preview-proration">{{ money(review.proration.amount.minor|abs) }} {{ review.proration.amount.currency or '' }}
 <span class="note">({{ review.proration.tags|join(', ') }}: {{ review.proration.days_used }} of {{ review.proration.days_in_period }} days)</span></td></tr>{% endif %}
</table>
{% if offer and review.change == 'cancel' %}<p class="note" id="offer">Before you cancel: {{ offer }}</p>{% endif %}
<form method="post">{% for k, v in fields.items() %}<input type="hidden" name="{{ k }}" value="{{ v }}">{% endfor %}
<input type="hidden" name="step" value="confirm">
<button type="submit" id="confirm">Confirm {{ review.change.replace('_', ' ') }}</button> <a href="">Back</a>
</form></section>
{% elif not done %}
<form method="post">
<fieldset><legend>What would you like to do?</legend>
{% for c in allowed %}<label><input type="radio" name="change" value="{{ c }}" {{ 'checked' if loop.first }}> {{ c.replace('_', ' ') }}</label><br>{% endfor %}
{% if 'change_plan' in allowed %}<label>New plan <input name="plan"></label><br>{% endif %}
{% if 'change_quantity' in allowed %}<label>New quantity <input name="quantity" type="number" min="1"></label><br>{% endif %}
<label>Effective <select name="effective"><option value="now">now</option><option value="period_end">at the end of the period</option></select></label><br>
<label>Reason (optional) <input name="reason" maxlength="500"></label>
</fieldset>
{% if offer and 'cancel' in allowed %}<p class="note" id="offer">Before you cancel: {{ offer }}</p>{% endif %}
<input type="hidden" name="step" value="review">
<button type="submit" id="review">Review</button>
</form>{% endif %}
</main></body></html>"""


_REFUSED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your subscription</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;
padding:0 1rem}</style></head><body><main><h1>Your subscription</h1>
<p role="alert" id="refused">{{ message }}</p></main></body></html>"""


@page.errorhandler(400)
@page.errorhandler(403)
@page.errorhandler(404)
def _refused(exc: HTTPException) -> Any:
    """The subscriber reads a page, not JSON: why the link or the change was refused."""
    message = exc.description if exc.code != 404 else "this link is not valid"
    return render_template_string(_REFUSED, message=message), exc.code


def _money(minor: int | None) -> str:
    return "-" if minor is None else f"{minor / 100:.2f}"


@page.get("/self-service/<token>")
def view(token: str) -> Any:
    claims = _claims(token)
    return _render(claims, None)


_FORM_FIELDS = ("change", "effective", "plan", "quantity", "reason")


@page.post("/self-service/<token>")
def confirm(token: str) -> Any:
    """``step=review``: the change's preview and a confirm button (nothing is done, the link stays
    usable); ``step=confirm`` (the default): the change is made and the link is used up."""
    claims = _claims(token)
    form = {k: v for k, v in request.form.items() if k in _FORM_FIELDS and v not in ("", None)}
    if form.get("change") not in claims.allowed:
        abort(403, "this link does not allow that change")
    try:
        req = ChangeRequest().load(form)
    except ValidationError as exc:
        abort(400, problems(exc))
    if request.form.get("step") == "review":
        with _hub().store.session() as session:
            try:
                shown = preview(session, apply.find(session, claims.subscription), req, utcnow())
            except (PreviewError, apply.ChangeError) as exc:
                abort(400, str(exc))
        return _render(claims, None, review=shown, fields=form)
    req["idempotency_key"] = f"self-service:{claims.nonce}"
    links.use(_hub().redis, claims)
    try:
        done, _ = apply.submit(_hub(), claims.subscription, req, origin="self-service")
    except (PreviewError, apply.ChangeError) as exc:
        abort(400, str(exc))
    return _render(claims, done)


def _render(claims: links.Claims, done: dict[str, Any] | None, review: dict[str, Any] | None = None,
            fields: dict[str, Any] | None = None) -> Any:
    offer = (_hub().rules.vars or {}).get("save_offer")
    with _hub().store.session() as session:
        current = describe(apply.find(session, claims.subscription))
    return render_template_string(_PAGE, s=current, allowed=claims.allowed, done=done, offer=offer,
                                  money=_money, review=review, fields=fields or {})


# -- batches -----------------------------------------------------------------------------------------------
class BatchQuery(Schema):
    name = fields.String(load_default="api", validate=validate.Regexp(r"^[\w.-]{1,100}$", error=(
        "1-100 letters, digits, '_', '.' or '-'")), metadata={
        "description": "the batch's name; part of each row's default idempotency key, so posting the same "
                       "rows under the same name again applies only the rows not applied yet"})
    dry_run = fields.Boolean(load_default=False, metadata={"description": "check every row and answer what "
                                                                          "each would do; store and apply nothing"})


class BatchIn(Schema):
    rows = fields.List(fields.Raw(), required=True, validate=validate.Length(1, batch.MAX_ROWS), metadata={
        "description": "one change per row: subscription, change, and optionally effective, plan, plan_amount, "
                       "quantity, reason, idempotency_key (the columns of `hub changes apply`)"})


class BatchPath(Schema):
    batch_id = fields.Integer(required=True, validate=validate.Range(1, 2**63 - 1))


class BadRowOut(Schema):
    line = fields.Integer(required=True, metadata={"description": "CSV: the file's line (1 is the header); "
                                                                  "JSON: the row's position from 1"})
    reason = fields.String(required=True)


class BatchErrorOut(ErrorOut):
    bad_rows = fields.List(fields.Nested(BadRowOut), metadata={"description": "every row that is not valid"})


class RowPreviewOut(Schema):
    line = fields.Integer(required=True)
    subscription = fields.String(required=True)
    change = fields.String(required=True)
    preview = fields.Dict(required=True)


class BatchPreviewOut(Schema):
    dry_run = fields.Boolean(required=True)
    rows = fields.List(fields.Nested(RowPreviewOut), required=True)


class RowResultOut(Schema):
    line = fields.Integer(required=True)
    subscription = fields.String(required=True)
    change = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": "pending, planned, cancelled or error"})
    id = fields.Integer(allow_none=True, metadata={"description": "the change (GET /api/subscriptions/<ref>/changes/<id>)"})
    change_status = fields.String(allow_none=True, metadata={"description": "the change's action status"})
    new = fields.Boolean(allow_none=True, metadata={"description": "false: the same key was planned before"})
    error = fields.String(allow_none=True)


class BatchOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "running (rows being planned), planned or "
                                                                   "cancelled"})
    total = fields.Integer(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    rows = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                       metadata={"description": "rows by status"})
    changes = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                          metadata={"description": "the rows' changes by action status"})
    progress = fields.Float(required=True, metadata={"description": "share of rows finished (change sent or "
                                                                    "failed, row refused or cancelled)"})
    results = fields.List(fields.Nested(RowResultOut))


@api.post("/changes/batches")
@accepts("/api/changes/batches", "post", "Apply a batch of subscription changes (CSV or JSON rows, all checked "
         "first)", query=BatchQuery, body=BatchIn, csv=True,
         responses={202: ("the batch, stored and being applied", BatchOut),
                    200: ("dry run: what each row would do", BatchPreviewOut),
                    400: ("bad rows (each with its line and reason); nothing applied", BatchErrorOut)})
def create_batch(query: dict[str, Any], body: dict[str, Any]) -> Any:
    hub = _hub()
    try:
        rows, bad = batch.parse_body(body.get("csv", ""), query["name"],
                                     "text/csv" if "csv" in body else "application/json", body.get("rows"))
    except csv.Error as exc:
        rows, bad = [], [(0, f"not CSV: {exc}")]
    if len(rows) + len(bad) > batch.MAX_ROWS:
        return bad_request({"rows": [f"at most {batch.MAX_ROWS} rows"]})
    if not rows and not bad:
        return bad_request({"rows": ["no rows"]})
    checked = list(batch.check(hub, rows))
    bad += [(row.line, error) for row, _, error in checked if error]
    if bad:
        bad.sort()
        return jsonify(error="bad request", message=f"{len(bad)} bad row(s); nothing applied",
                       errors={"rows": [f"line {line}: {reason}" for line, reason in bad]},
                       bad_rows=[{"line": line, "reason": reason} for line, reason in bad]), 400
    if query["dry_run"]:
        return jsonify(dry_run=True, rows=[{"line": row.line, "subscription": row.subscription,
                                            "change": row.request["change"], "preview": shown}
                                           for row, shown, _ in checked])
    batch_id = batch.create(hub, query["name"], rows)
    batch.enqueue(hub, batch_id)
    return jsonify(batch.view(hub, batch_id, with_rows=False)), 202


@api.get("/changes/batches/<int:batch_id>")
@accepts("/api/changes/batches/{batch_id}", "get", "A change batch's progress and per-row results",
         path_params=BatchPath, responses={200: ("the batch", BatchOut), 404: ("no such batch", ErrorOut)})
def show_batch(batch_id: int) -> Any:
    shown = batch.view(_hub(), batch_id)
    if shown is None:
        abort(404, f"no change batch {batch_id}")
    return jsonify(shown)


@api.post("/changes/batches/<int:batch_id>/cancel")
@accepts("/api/changes/batches/{batch_id}/cancel", "post", "Cancel a change batch: no further row is applied, "
         "and its changes not yet sent are cancelled", path_params=BatchPath,
         responses={200: ("the batch, cancelled", BatchOut), 404: ("no such batch", ErrorOut)})
def cancel_batch(batch_id: int) -> Any:
    if not batch.cancel(_hub(), batch_id):
        abort(404, f"no change batch {batch_id}")
    return jsonify(batch.view(_hub(), batch_id))
