"""Klaviyo system webhooks for ``hub connectors register`` and the health check (hub/sync.py).

Klaviyo's Webhooks API (accounts with it: Advanced KDP, or an OAuth app with ``webhooks:write``),
JSON:API bodies with the ``revision`` header every Klaviyo call carries:

- ``GET /api/webhooks/?include=webhook-topics`` lists the account's webhooks with their topics;
- ``POST /api/webhooks/`` creates one: ``{data: {type: webhook, attributes: {name, endpoint_url,
  secret_key}, relationships: {webhook-topics: {data: [{type: webhook-topic, id}]}}}}``;
- ``PATCH /api/webhooks/{id}/`` updates ``endpoint_url``, ``enabled``, ``secret_key`` and topics.

The hub chooses the ``secret_key`` (Klaviyo signs deliveries with it and never returns it) and
stores it as ``HUB_KLAVIYO_WEBHOOK_SECRET``; when the hub already has one it is reused, so a
repair never changes the secret the running hub verifies with. Responses show ``endpoint_url``
"truncated for security", so the hub's webhook is found by its id, else by its name, never by
its URL. Rate limits: 1/s burst, 15/min steady. Topics: the system-event topics the mapping reads.
"""

from __future__ import annotations

import secrets
from typing import Any

from connectors.http import ApiClient
from connectors.sync import Endpoint
from hub.kernel.errors import PermanentError
from hub.kernel.mapping import table

NAME = "subscriber hub"
SECRET_NOTE = ("Klaviyo never returns a webhook's secret_key: copy the one this webhook was created with into "
               "HUB_KLAVIYO_WEBHOOK_SECRET, or let the hub re-register it with a new one")


def topics() -> list[str]:
    return sorted(t for t in table("klaviyo").events if t.startswith("event:"))


def _endpoint(data: dict[str, Any], secret: str | None = None) -> Endpoint:
    attrs = data.get("attributes") or {}
    linked = ((data.get("relationships") or {}).get("webhook-topics") or {}).get("data") or []
    return Endpoint(str(data["id"]), str(attrs.get("endpoint_url") or ""),
                    "enabled" if attrs.get("enabled", True) else "disabled",
                    sorted(str(t.get("id")) for t in linked if isinstance(t, dict)), secret)


def get(client: ApiClient, webhook_id: str) -> Endpoint:
    try:
        data = client.request("GET", f"/api/webhooks/{webhook_id}/", params={"include": "webhook-topics"},
                              whole=True).data or {}
    except PermanentError as exc:
        if exc.status == 404:
            return Endpoint(webhook_id, "", "missing", [])
        raise
    return _endpoint(data.get("data") or {"id": webhook_id})


def points_at(endpoint: Endpoint, url: str) -> bool:
    """Klaviyo truncates ``endpoint_url`` in answers: a prefix of the hub's URL is the hub's URL."""
    shown = endpoint.url.rstrip(".…/")
    return bool(shown) and url.startswith(shown)


def find(client: ApiClient) -> Endpoint | None:
    """The account's webhook named like the hub's, if any."""
    data = client.request("GET", "/api/webhooks/", params={"include": "webhook-topics"}, whole=True).data or {}
    for item in data.get("data") or []:
        if isinstance(item, dict) and (item.get("attributes") or {}).get("name") == NAME:
            return _endpoint(item)
    return None


def _body(url: str, secret: str | None, webhook_id: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"name": NAME, "endpoint_url": url, "description": "webhooks to the subscriber hub"}
    if webhook_id:
        attributes["enabled"] = True
    if secret:
        attributes["secret_key"] = secret
    data: dict[str, Any] = {"type": "webhook", "attributes": attributes, "relationships": {
        "webhook-topics": {"data": [{"type": "webhook-topic", "id": t} for t in topics()]}}}
    if webhook_id:
        data["id"] = webhook_id
    return {"data": data}


def register(client: ApiClient, url: str, known_id: str | None, secret: str | None = None) -> tuple[Endpoint, str]:
    """Create or update the hub's webhook; ``secret`` is the one the hub verifies with (None: a new
    one is made and returned to be stored)."""
    current = get(client, known_id) if known_id else None
    if current is None or current.status == "missing":
        current = find(client)
    if current is None:
        chosen = secret or secrets.token_hex(32)
        data = client.request("POST", "/api/webhooks/", json_body=_body(url, chosen), whole=True).data or {}
        return _endpoint(data.get("data") or {}, chosen), "created"
    if points_at(current, url) and current.topics == topics() and current.status == "enabled" and secret:
        return current, "unchanged"
    # an adopted webhook's secret is unknown: give it one the hub knows
    chosen = None if secret else secrets.token_hex(32)
    data = client.request("PATCH", f"/api/webhooks/{current.id}/", json_body=_body(url, chosen, current.id),
                          whole=True).data or {}
    return _endpoint(data.get("data") or {"id": current.id}, chosen), "updated"
