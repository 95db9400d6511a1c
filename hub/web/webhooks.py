"""``POST /webhooks/<connector>[/<token>]``: verify the raw bytes, commit the delivery, answer 2xx;
the process's relay then enqueues a thin job (hub/relay.py). No rule evaluation and no outbound
call happen here.

Answers: 200 stored (or duplicate: no new work); 401 forged or stale (no detail, nothing stored);
404 unknown or unconfigured connector (naming the setting); 413 too large; 503 database down (the
provider retries); HEAD 200 for set-up probes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

import connectors
from connectors.base import InboundRequest
from hub import alerts, telemetry, tracing
from hub.kernel.errors import VerificationError
from hub.store import Delivery, utcnow
from hub.store.db import StoreUnavailable
from hub.store.models import DeliveryStatus

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


def _hub() -> Any:
    return current_app.extensions["hub"]


def _external_url() -> str:
    """The URL the provider called: HUB_PUBLIC_URL + path + query when set (behind a proxy).

    The query is kept exactly as sent (HubSpot v3 signs it): ``request.url`` would re-encode it
    (``%C3%A9`` -> ``é``, ``%22`` -> ``"``), and a strict UTF-8 decode could raise on odd bytes."""
    public = _hub().settings["HUB_PUBLIC_URL"]
    query = request.query_string.decode("utf-8", "replace")
    base = f"{public}{request.path}" if public else request.base_url
    return base + (f"?{query}" if query else "")


def _whole_body(cap: int) -> bytes:
    """The request body, or 413 when it is larger than ``cap``.

    A Content-Length over MAX_CONTENT_LENGTH is refused by werkzeug before reading. A chunked body
    has no length: werkzeug's capped stream then stops at the cap *silently*, and storing that
    prefix would ack a body the provider never sent. One more read past the cap raises 413
    (so a chunked body of exactly ``cap`` bytes is refused too)."""
    body = request.get_data(cache=False)
    if request.content_length is None and len(body) >= cap:
        request.stream.read(1)  # RequestEntityTooLarge: the body went on past the cap
    return body


@bp.route("/webhooks/<name>", methods=["HEAD", "GET"], defaults={"token": None})
@bp.route("/webhooks/<name>/<token>", methods=["HEAD", "GET"])
def probe(name: str, token: str | None) -> Any:
    if connectors.get(name) is None:
        return jsonify(error="unknown connector"), 404
    return ("", 200) if request.method == "HEAD" else (jsonify(ok=True, connector=name), 200)


@bp.post("/webhooks/<name>", defaults={"token": None})
@bp.post("/webhooks/<name>/<token>")
def receive(name: str, token: str | None) -> Any:
    started = time.perf_counter()
    try:
        with tracing.span("webhook.receive", connector=name):
            answer, outcome = _receive(name, token)
            tracing.annotate(outcome=outcome)
    except RequestEntityTooLarge:
        telemetry.webhook_answered(name, "too_large", time.perf_counter() - started)
        raise
    if outcome is not None:  # an unknown connector name is not a label value
        telemetry.webhook_answered(name, outcome, time.perf_counter() - started)
    return answer


def _receive(name: str, token: str | None) -> tuple[Any, str | None]:
    """The answer, and its outcome for the metrics (stored, duplicate, refused, unavailable)."""
    hub = _hub()
    connector = connectors.get(name)
    if connector is None or not connector.receives:
        return (jsonify(error="unknown connector", connector=name), 404), None
    missing = connector.missing_inbound_settings(hub.settings)
    if missing:
        return (jsonify(error="connector not configured", connector=name,
                       message=f"set {', '.join(missing)} to enable /webhooks/{name}"), 404), None
    body = _whole_body(hub.settings["HUB_MAX_BODY_BYTES"])
    headers = {k.lower(): v for k, v in request.headers.items()}
    inbound = InboundRequest(request.method, _external_url, headers, body, token)
    try:
        connector.verify(inbound, hub.settings)
    except VerificationError as exc:
        log.warning("webhook %s rejected: %s", name, hub.scrub(str(exc)))
        alerts.note_refused(hub.redis, name)  # for the signature_failures alert
        return (jsonify(error="unauthorized"), 401), "refused"
    dedup = connector.dedup_key(inbound)[:255]
    kept = {h: headers[h] for h in connector.kept_headers if h in headers}
    now = utcnow()
    row = {"connector": name, "dedup_key": dedup, "headers": kept, "body": body, "received_at": now,
           "status": DeliveryStatus.RECEIVED, "attempts": 0, "enqueued": 1, "enqueued_at": now, "event_count": 0}
    for attempt in (1, 2):
        try:
            delivery_id = hub.store.insert_one(Delivery.__table__, row, ["connector", "dedup_key"])
            break
        except StoreUnavailable as exc:
            if attempt == 1 and exc.retry:
                continue  # a pooled connection died (database restarted): once more on a fresh one
            log.error("webhook %s not stored: database unavailable (%s)", name, exc)
            return (jsonify(error="temporarily unavailable"), 503), "unavailable"
    if delivery_id is None:
        return (jsonify(ok=True, duplicate=True), 200), "duplicate"
    tracing.annotate(delivery_id=delivery_id)
    # durable already: the job is enqueued off this thread (with the trace context, when tracing)
    hub.relay.submit(delivery_id, tracing.carrier(delivery_id=delivery_id))
    return (jsonify(ok=True, delivery=delivery_id), 200), "stored"
