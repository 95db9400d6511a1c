"""Stripe webhook endpoints for ``hub connectors register`` and the health check (hub/sync.py).

``POST /v1/webhook_endpoints`` (``url``, ``enabled_events[]``, ``api_version``) creates one and is
the only answer that carries its signing ``secret``; ``POST /v1/webhook_endpoints/{id}`` updates
``url``, ``enabled_events[]`` and ``disabled``; ``GET /v1/webhook_endpoints`` lists them, newest
first. Stripe caps endpoints per account (16), so the hub keeps to one: the registered id, or an
endpoint already pointing at the same URL, is updated rather than a second one created.
"""

from __future__ import annotations

import hashlib
from typing import Any

from connectors.http import ApiClient
from connectors.stripe.backfill import mapped_types
from connectors.stripe.client import API_VERSION
from connectors.sync import Endpoint
from hub.kernel.errors import PermanentError


def _endpoint(data: dict[str, Any]) -> Endpoint:
    return Endpoint(str(data["id"]), str(data.get("url") or ""), str(data.get("status") or "enabled"),
                    list(data.get("enabled_events") or []), data.get("secret"))


def topics() -> list[str]:
    return mapped_types()


def get(client: ApiClient, endpoint_id: str) -> Endpoint:
    try:
        return _endpoint(client.request("GET", f"/v1/webhook_endpoints/{endpoint_id}", whole=True).data)
    except PermanentError as exc:
        if exc.status == 404:
            return Endpoint(endpoint_id, "", "missing", [])
        raise


def find(client: ApiClient, url: str) -> Endpoint | None:
    data = client.request("GET", "/v1/webhook_endpoints", params={"limit": 100}, whole=True).data or {}
    for item in data.get("data") or []:
        if item.get("url") == url:
            return _endpoint(item)
    return None


def _form(url: str) -> dict[str, Any]:
    return {"url": url, "enabled_events[]": topics()}


def register(client: ApiClient, url: str, known_id: str | None, secret: str | None = None
             ) -> tuple[Endpoint, str]:
    """Create or update the hub's endpoint; returns it and what was done (created|updated|unchanged)."""
    current = get(client, known_id) if known_id else None
    if current is None or current.status == "missing":
        current = find(client, url)
    if current is None:
        # the idempotency key makes two concurrent registrations of one URL create a single endpoint
        key = "hub-register-" + hashlib.sha256(url.encode()).hexdigest()[:32]
        data = client.request("POST", "/v1/webhook_endpoints", form={**_form(url), "api_version": API_VERSION,
                                                                      "description": "subscriber hub"},
                              headers={"Idempotency-Key": key}, whole=True).data
        return _endpoint(data), "created"
    if current.url == url and sorted(current.topics) == topics() and current.status == "enabled":
        return current, "unchanged"
    data = client.request("POST", f"/v1/webhook_endpoints/{current.id}", form={**_form(url), "disabled": "false"},
                          whole=True).data
    return _endpoint(data), "updated"
