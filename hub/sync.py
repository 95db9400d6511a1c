"""Webhook subscriptions the hub registers at providers, and the health check that keeps them and
closes the gaps they leave (``hub connectors register`` / ``hub connectors health``, docs/backfill.md).

- Registration creates or updates the provider's subscription where its API allows (Stripe webhook
  endpoints, Shopify webhook subscriptions, Klaviyo system webhooks) and stores the signing secret
  it returns (Stripe) or gives (Klaviyo) in ``HUB_SECRETS_FILE`` (dotenv format,
  mode 0600), which settings read for any variable the environment leaves unset; the secret is
  never printed or logged. Other providers get the exact manual steps.
- The health check, run by the scheduler every ``HUB_SYNC_HEALTH_SECONDS`` (as an ingest job), checks
  that each registered subscription still exists, is enabled and points at the hub (re-creating or
  re-enabling it where allowed, and logging an error either way), then reads the provider's events
  of the last ``HUB_SYNC_LOOKBACK_HOURS`` from its events API and records the ones that never
  arrived (a "gap repair"), exactly as a backfill records them: the delivery key is the webhook's,
  so what arrived is skipped and what was missing is recorded once.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dotenv import set_key

import connectors
from connectors.base import Connector
from hub import backfill, jobs
from hub.kernel.errors import ActionError
from hub.outbound import outbox
from hub.runtime import current
from hub.store import utcnow
from hub.store.sync_models import WebhookRegistration

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

_HEALTH_LOCK = "hub:sync:health"

#: where an API cannot register the hub's webhook: what the operator does by hand ({url} is the
#: hub's webhook URL for the connector)
MANUAL_STEPS = {
    "chargebee": (
        "Chargebee: Settings > Configure Chargebee > Webhooks > Add Webhook.\n"
        "  Webhook URL: {url}\n"
        "  Protect webhook URL with basic authentication: on, with the user name and password of\n"
        "  HUB_CHARGEBEE_WEBHOOK_USERNAME / HUB_CHARGEBEE_WEBHOOK_PASSWORD. API version: v2. Events: all\n"
        "  (the hub stores unmapped ones as provider.unmapped)."),
    "hubspot": (
        "HubSpot: developer account > the app > Webhooks: Target URL {url}; subscribe to contact.creation,\n"
        "  contact.propertyChange (email, hs_timezone, hs_email_optout) and contact.merge;\n"
        "  HUB_HUBSPOT_CLIENT_SECRET is the app's client secret."),
    "activecampaign": (
        "ActiveCampaign: Settings > Developer > Webhooks > Add: URL {url}, events subscribe, unsubscribe,\n"
        "  update; sources public, admin, api, system."),
}

#: connectors whose subscriptions the hub creates itself: name -> module with ``register``, ``get``
#: (optional: ``points_at`` where the provider shows the URL altered, ``SECRET_NOTE`` where no
#: secret comes back)
REGISTRARS = {"stripe": "connectors.stripe.webhooks", "shopify": "connectors.shopify.webhooks",
              "klaviyo": "connectors.klaviyo.webhooks"}

#: the setting each registrar's secret is stored as (and read from, when the hub has one)
SECRET_SETTING = {"stripe": "HUB_STRIPE_WEBHOOK_SECRET", "shopify": "HUB_SHOPIFY_WEBHOOK_SECRET",
                  "klaviyo": "HUB_KLAVIYO_WEBHOOK_SECRET"}


class SyncError(Exception):
    """Registration that cannot be done (no credentials, unknown connector)."""


def webhook_url(public_url: str, name: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/{name}"


def _registrar(name: str) -> ModuleType | None:
    module = REGISTRARS.get(name)
    return importlib.import_module(module) if module else None


def store_secret(path: str | os.PathLike[str], name: str, value: str) -> None:
    """Write ``name=value`` into the secrets file, created readable by its owner only."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(file, 0o600)
    set_key(str(file), name, value, quote_mode="never")


def register(hub: "Hub", name: str, public_url: str) -> dict[str, Any]:
    """Create or update ``name``'s webhook subscription; the outcome (no secret in it)."""
    connector = connectors.get(name)
    if connector is None or not connector.receives:
        raise SyncError(f"no inbound connector named {name!r}")
    url = webhook_url(public_url, name)
    registrar = _registrar(name)
    if registrar is None:
        return {"connector": name, "url": url, "outcome": "manual",
                "steps": MANUAL_STEPS.get(name, f"Point {name}'s webhooks at {url}.").format(url=url)}
    client = _client(hub, connector)
    with hub.store.session() as session:
        known = session.get(WebhookRegistration, name)
        known_id = known.remote_id if known else None
    current_secret = hub.settings[SECRET_SETTING[name]]
    current_secret = current_secret[0] if isinstance(current_secret, list) and current_secret else None
    endpoint, outcome = registrar.register(client, url, known_id, secret=current_secret)
    result: dict[str, Any] = {"connector": name, "url": url, "outcome": outcome, "id": endpoint.id,
                              "topics": len(endpoint.topics)}
    if endpoint.detail:
        result["detail"] = endpoint.detail
    if endpoint.secret and endpoint.secret != current_secret:
        store_secret(hub.settings["HUB_SECRETS_FILE"], SECRET_SETTING[name], endpoint.secret)
        result["secret"] = f"stored as {SECRET_SETTING[name]} in {hub.settings['HUB_SECRETS_FILE']}"
        if os.environ.get(SECRET_SETTING[name]):
            result["warning"] = (f"{SECRET_SETTING[name]} is set in the environment and wins over the stored "
                                 "secret: unset it (or add the new one to it) and restart")
    elif outcome != "unchanged" and not current_secret and not endpoint.secret:
        result["warning"] = getattr(registrar, "SECRET_NOTE", None) or (
            f"{name} returns the signing secret only when an endpoint is created: copy it from the dashboard "
            f"into {SECRET_SETTING[name]}")
    _save(hub, name, endpoint.id, url, endpoint.topics, endpoint.status)
    return result


def _client(hub: "Hub", connector: Connector) -> Any:
    if connector.dry_run(hub.settings):
        missing = [n for n in connector.outbound_settings if not hub.settings[n]]
        raise SyncError(f"set {', '.join(missing)} to manage {connector.name}'s webhooks")
    return connector.client(hub.settings)


def _save(hub: "Hub", name: str, remote_id: str, url: str, topics: list[str], status: str) -> None:
    now = utcnow()
    with hub.store.session() as session:
        row = session.get(WebhookRegistration, name)
        if row is None:
            session.add(WebhookRegistration(connector=name, remote_id=remote_id, url=url, topics=topics,
                                            status=status, checked_at=now, created_at=now, updated_at=now))
        else:
            row.remote_id, row.url, row.topics, row.status = remote_id, url, topics, status
            row.checked_at = row.updated_at = now


def check_subscription(hub: "Hub", row: WebhookRegistration) -> dict[str, Any]:
    """Is the registered subscription still there, enabled, at the hub's URL? Repair it if not."""
    connector = connectors.get(row.connector)
    registrar = _registrar(row.connector)
    if connector is None or registrar is None:
        return {"status": "unknown"}
    client = _client(hub, connector)
    endpoint = registrar.get(client, row.remote_id)
    url_ok = getattr(registrar, "points_at", lambda e, url: e.url == url)(endpoint, row.url)
    healthy = endpoint.status == "enabled" and url_ok
    report: dict[str, Any] = {"id": row.remote_id, "status": endpoint.status, "url_ok": url_ok}
    if healthy:
        _save(hub, row.connector, row.remote_id, row.url, endpoint.topics, endpoint.status)
        return report
    log.error("operational alert: %s webhook subscription %s is %s%s; re-registering", row.connector, row.remote_id,
              endpoint.status, "" if url_ok or not endpoint.url else " and points elsewhere")
    public = row.url.rsplit("/webhooks/", 1)[0]
    report["repair"] = register(hub, row.connector, public)
    report["repair"].pop("steps", None)
    return report


def repair_gaps(hub: "Hub", connector: Connector, lookback: timedelta | None = None,
                reader: backfill.Reader | None = None) -> dict[str, Any]:
    """Read the provider's recent events and record those that never arrived; the counts."""
    source = backfill.source_for(connector)
    phase = source.events_phase()
    if phase is None:
        return {"checked": 0, "note": "no events API"}
    lookback = lookback or timedelta(hours=hub.settings["HUB_SYNC_LOOKBACK_HOURS"])
    end = utcnow()
    start = end - lookback
    reader = reader or backfill.Reader(hub, connector)
    records, cursor = [], None
    while True:
        page = reader.page(phase, start, end, cursor)
        records.extend(page.records)
        cursor = page.next
        if cursor is None:
            break
    with hub.store.session() as session:
        counts, due = backfill.record_page(hub, session, connector, records,
                                           horizon_start=backfill.horizon_start(hub), origin="provider")
    outbox.dispatch(hub, due)
    if counts.recorded:
        log.warning("gap repair: %s events from %s had not arrived by webhook; recorded now (%d actions, %d skipped "
                    "as historic)", counts.recorded, connector.name, counts.actions, counts.skipped)
    return {"checked": counts.fetched, "missing": counts.recorded, "events": counts.events,
            "actions": counts.actions, "skipped": counts.skipped, "failed": counts.failed}


def health(hub: "Hub") -> list[dict[str, Any]]:
    """Every inbound connector: its registered subscription and the gap repair over the lookback."""
    with hub.store.session() as session:
        registered = {r.connector: r for r in session.query(WebhookRegistration).all()}
        for row in registered.values():
            session.expunge(row)
    out = []
    readable = set(backfill.available())
    for name, connector in sorted(connectors.REGISTRY.items()):
        if not connector.receives or connector.missing_inbound_settings(hub.settings) and name not in registered:
            continue
        report: dict[str, Any] = {"connector": name}
        try:
            report["subscription"] = (check_subscription(hub, registered[name]) if name in registered
                                      else {"status": "not registered by the hub"})
        except (ActionError, SyncError) as exc:
            report["subscription"] = {"status": "unknown", "error": hub.scrub(str(exc))}
        if name in readable and not connector.dry_run(hub.settings):
            try:
                report["gaps"] = repair_gaps(hub, connector)
            except ActionError as exc:
                report["gaps"] = {"error": hub.scrub(str(exc))}
        else:
            report["gaps"] = {"checked": 0, "note": "no events API or no API key"}
        out.append(report)
    return out


def health_if_due(hub: "Hub") -> bool:
    """Called from the scheduler loop: queue one health check per ``HUB_SYNC_HEALTH_SECONDS`` (the
    Redis lock keeps several schedulers to one). It runs as an ingest job: reading pages at the
    vendor's rate never holds up the scheduler."""
    every = hub.settings["HUB_SYNC_HEALTH_SECONDS"]
    if not every or not hub.redis.set(_HEALTH_LOCK, "1", nx=True, ex=max(int(every), 1)):
        return False
    return jobs.enqueue_once(hub.redis, jobs.INGEST_QUEUE, "hub.sync.health_job", int(time.time()),
                             f"sync-health-{int(time.time())}")


def health_job(_: int) -> None:
    """The RQ job ``health_if_due`` queues."""
    for report in health(current()):
        log.info("sync health: %s", report)
