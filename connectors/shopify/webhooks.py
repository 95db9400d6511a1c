"""Shopify webhook subscriptions for ``hub connectors register`` and the health check (hub/sync.py),
through the Admin GraphQL API.

A Shopify subscription is one topic to one URI, so the hub's registration is a set: one
subscription per topic the mapping reads (``mappings/shopify.yaml``), all at the hub's URL. The app's
own subscriptions are listed first (``webhookSubscriptions``, cursor-paged): a topic already
subscribed at the URL is left alone, one subscribed at the hub's previous URL is moved with
``webhookSubscriptionUpdate``, and only a topic with neither gets ``webhookSubscriptionCreate``.
A second run therefore changes nothing. Input is ``{uri, format: JSON}`` (``uri`` replaced
``callbackUrl`` in 2025-10). The registration is found again by its URL (``remote_id``).

Shopify signs deliveries with the app's client secret; no secret comes back, so
``HUB_SHOPIFY_WEBHOOK_SECRET`` must hold it. The mandatory compliance topics
(``customers/data_request``, ``customers/redact``, ``shop/redact``) cannot be subscribed through the
API: they are declared in the app's configuration (the command says so).
"""

from __future__ import annotations

from typing import Any

from connectors.http import ApiClient
from connectors.shopify.client import ShopifyClient
from connectors.sync import Endpoint
from hub.kernel.errors import PermanentError
from hub.kernel.mapping import table

#: declared in the app configuration, never through webhookSubscriptionCreate
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
SECRET_NOTE = ("Shopify signs with the app's client secret (none is returned): set HUB_SHOPIFY_WEBHOOK_SECRET to it; "
               "the compliance topics customers/data_request, customers/redact and shop/redact are declared in "
               "the app's configuration")

LIST = """query webhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    nodes { id topic uri format }
    pageInfo { hasNextPage endCursor }
  }
}"""
CREATE = """mutation webhookSubscriptionCreate($topic: WebhookSubscriptionTopic!,
    $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""
UPDATE = """mutation webhookSubscriptionUpdate($id: ID!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""


def topic_enum(topic: str) -> str:
    """``orders/paid`` -> ``ORDERS_PAID`` (the WebhookSubscriptionTopic value)."""
    return topic.replace("/", "_").upper()


def topics() -> list[str]:
    """The WebhookSubscriptionTopic values of the topics the mapping reads (pseudo-rows aside)."""
    return sorted(topic_enum(t) for t in table("shopify").events if "/" in t and t not in COMPLIANCE_TOPICS)


def _shopify(client: ApiClient) -> ShopifyClient:
    assert isinstance(client, ShopifyClient), "Shopify subscriptions need the Shopify client"
    return client


def subscriptions(client: ApiClient) -> list[dict[str, Any]]:
    """Every webhook subscription of the app in this shop."""
    out, cursor = [], None
    while True:
        body = _shopify(client).graphql(LIST, {"first": 100, "after": cursor}, whole=True).data or {}
        connection = (body.get("data") or {}).get("webhookSubscriptions") or {}
        out += [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
        info = connection.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return out
        cursor = info.get("endCursor")


def _mutate(client: ApiClient, mutation: str, name: str, variables: dict[str, Any]) -> None:
    body = _shopify(client).graphql(mutation, variables, whole=True).data or {}
    payload = (body.get("data") or {}).get(name) or {}
    errors = [e for e in payload.get("userErrors") or [] if isinstance(e, dict)]
    if errors:
        text = "; ".join(str(e.get("message")) for e in errors)[:500]
        raise PermanentError(f"Shopify {name} refused: {text}", status=200, response={"body": body})


def _state(url: str, existing: list[dict[str, Any]]) -> Endpoint:
    at_url = sorted(str(s.get("topic")) for s in existing if s.get("uri") == url)
    missing = set(topics()) - set(at_url)
    status = "missing" if not at_url else ("incomplete" if missing else "enabled")
    return Endpoint(url, url if at_url else "", status, at_url)


def get(client: ApiClient, remote_id: str) -> Endpoint:
    """The hub's subscriptions at ``remote_id`` (its URL): enabled when every topic is there."""
    return _state(remote_id, subscriptions(client))


def points_at(endpoint: Endpoint, url: str) -> bool:
    return endpoint.url in ("", url)


def register(client: ApiClient, url: str, known_id: str | None, secret: str | None = None) -> tuple[Endpoint, str]:
    """Subscribe every mapped topic at ``url``; returns the registration and what was done."""
    existing = subscriptions(client)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for sub in existing:
        by_topic.setdefault(str(sub.get("topic")), []).append(sub)
    created = updated = 0
    for topic in topics():
        subs = by_topic.get(topic, [])
        if any(s.get("uri") == url for s in subs):
            continue
        moved = next((s for s in subs if known_id and s.get("uri") == known_id), None)
        if moved is not None:  # the hub's own subscription at its previous URL
            _mutate(client, UPDATE, "webhookSubscriptionUpdate",
                    {"id": moved["id"], "webhookSubscription": {"uri": url, "format": "JSON"}})
            updated += 1
        else:
            _mutate(client, CREATE, "webhookSubscriptionCreate",
                    {"topic": topic, "webhookSubscription": {"uri": url, "format": "JSON"}})
            created += 1
    endpoint = Endpoint(url, url, "enabled", topics(),
                        detail=f"{created} created, {updated} moved, {len(topics()) - created - updated} unchanged "
                               "(one subscription per topic)")
    return endpoint, ("created" if created and not updated else "updated" if created or updated else "unchanged")
