"""Stripe and Chargebee list APIs as real HTTP servers on 127.0.0.1 (tests/mockapi.py), serving
paginated data the way the vendors document it, optionally with the vendor's rate limit (429 with
``Retry-After``), and Stripe's webhook endpoints API. Used by the backfill, gap-repair and
registration tests and by benchmarks/backfill.py."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.mockapi import MockApi, Reply, Seen

JSON = {"Content-Type": "application/json"}


@dataclass
class RateLimit:
    """At most ``limit`` requests per ``window`` seconds; beyond that 429 with ``Retry-After``."""

    limit: int
    window: float
    sent: deque[float] = field(default_factory=deque)
    refused: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def admit(self) -> float | None:
        """None when the request may go; otherwise the seconds until it could."""
        with self._lock:
            now = time.monotonic()
            while self.sent and self.sent[0] <= now - self.window:
                self.sent.popleft()
            if len(self.sent) >= self.limit:
                self.refused += 1
                return self.sent[0] + self.window - now
            self.sent.append(now)
            return None


def _query(seen: Seen) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(seen.path)
    return parts.path, parse_qs(parts.query)


def _one(q: dict[str, list[str]], name: str, default: Any = None) -> Any:
    return q[name][0] if name in q else default


class Fake:
    """A provider's API on 127.0.0.1: a real HTTP server answering through the subclass's ``script``."""

    def __init__(self) -> None:
        self.api = MockApi(self.script)

    def script(self, seen: Seen, n: int) -> Reply:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.api.url

    def close(self) -> None:
        self.api.close()


class FakeStripe(Fake):
    """``/v1/events`` and the four list endpoints, newest first, ``starting_after`` paging."""

    def __init__(self, rate: RateLimit | None = None, latency: float = 0.0):
        self.events: list[dict[str, Any]] = []
        self.lists: dict[str, list[dict[str, Any]]] = {"customers": [], "subscriptions": [], "invoices": [],
                                                       "charges": []}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.rate = rate
        self.latency = latency
        super().__init__()

    def script(self, seen: Seen, n: int) -> Reply:
        if self.rate is not None:
            wait = self.rate.admit()
            if wait is not None:
                return 429, {**JSON, "Retry-After": str(max(1, round(wait)))}, b'{"error":{"type":"rate_limit"}}', 0.0
        path, q = _query(seen)
        if path.startswith("/v1/webhook_endpoints"):
            return self._endpoints(seen, path)
        if seen.method != "GET":
            return 405, JSON, b"{}", 0.0
        if path == "/v1/events":
            items = self.events
            types = q.get("types[]")
            if types:
                items = [e for e in items if e["type"] in types]
        elif path.startswith("/v1/") and path[4:] in self.lists:
            items = self.lists[path[4:]]
            if path == "/v1/subscriptions" and _one(q, "status") != "all":
                items = [s for s in items if s.get("status") != "canceled"]  # Stripe's default leaves them out
        else:
            return 404, JSON, b'{"error":{"type":"invalid_request_error"}}', 0.0
        return 200, JSON, json.dumps(self.page(items, q)).encode(), self.latency

    @staticmethod
    def page(items: list[dict[str, Any]], q: dict[str, list[str]]) -> dict[str, Any]:
        gte, lt = int(_one(q, "created[gte]", 0)), int(_one(q, "created[lt]", 2 ** 40))
        chosen = sorted((i for i in items if gte <= i["created"] < lt), key=lambda i: (i["created"], i["id"]),
                        reverse=True)
        after = _one(q, "starting_after")
        if after:
            ids = [i["id"] for i in chosen]
            chosen = chosen[ids.index(after) + 1:]
        limit = int(_one(q, "limit", 10))
        return {"object": "list", "url": "/v1/...", "has_more": len(chosen) > limit, "data": chosen[:limit]}

    def _endpoints(self, seen: Seen, path: str) -> Reply:
        form = {k: v for k, v in parse_qs(seen.body.decode()).items()}
        if seen.method == "GET" and path == "/v1/webhook_endpoints":
            data = list(self.endpoints.values())
            return 200, JSON, json.dumps({"object": "list", "has_more": False, "data": data}).encode(), 0.0
        if seen.method == "POST" and path == "/v1/webhook_endpoints":
            eid = f"we_{len(self.endpoints) + 1}"
            self.endpoints[eid] = {"id": eid, "object": "webhook_endpoint", "url": form["url"][0],
                                   "enabled_events": form.get("enabled_events[]", []), "status": "enabled"}
            return 200, JSON, json.dumps({**self.endpoints[eid], "secret": f"whsec_created_{eid}"}).encode(), 0.0
        eid = path.rsplit("/", 1)[1]
        if eid not in self.endpoints:
            return 404, JSON, b'{"error":{"type":"invalid_request_error"}}', 0.0
        if seen.method == "POST":
            endpoint = self.endpoints[eid]
            if "url" in form:
                endpoint["url"] = form["url"][0]
            if "enabled_events[]" in form:
                endpoint["enabled_events"] = form["enabled_events[]"]
            if "disabled" in form:
                endpoint["status"] = "disabled" if form["disabled"][0] == "true" else "enabled"
        return 200, JSON, json.dumps(self.endpoints[eid]).encode(), 0.0


class FakeChargebee(Fake):
    """``/api/v2/events``, ``/customers``, ``/subscriptions``, ``/invoices``: offset paging."""

    FIELDS = {"events": ("event", "occurred_at"), "customers": ("customer", "created_at"),
              "subscriptions": ("subscription", "created_at"), "invoices": ("invoice", "date")}

    def __init__(self) -> None:
        self.lists: dict[str, list[dict[str, Any]]] = {name: [] for name in self.FIELDS}
        super().__init__()

    def script(self, seen: Seen, n: int) -> Reply:
        path, q = _query(seen)
        name = path.rsplit("/", 1)[1]
        if not path.startswith("/api/v2/") or name not in self.FIELDS:
            return 404, JSON, b'{"message":"not found"}', 0.0
        resource, field_ = self.FIELDS[name]
        after, before = int(_one(q, f"{field_}[after]", -1)), int(_one(q, f"{field_}[before]", 2 ** 40))
        chosen = sorted((i for i in self.lists[name] if after < i[resource][field_] < before),
                        key=lambda i: (i[resource][field_], i[resource]["id"]))
        if _one(q, "sort_by[asc]") != field_:
            chosen.reverse()
        offset, limit = int(_one(q, "offset", 0)), int(_one(q, "limit", 10))
        body: dict[str, Any] = {"list": chosen[offset:offset + limit]}
        if offset + limit < len(chosen):
            body["next_offset"] = str(offset + limit)  # Chargebee's token is opaque; a position will do here
        return 200, JSON, json.dumps(body).encode(), 0.0


class FakeShopify(Fake):
    """Shopify's Admin GraphQL endpoint (``POST /admin/api/<version>/graphql.json``) for the backfill's
    four connections, oldest first with opaque cursors and the ``created_at`` search filter, and a
    query-cost bucket like Shopify's: each query asks for ``first`` points plus one (nested
    ``lineItems(first:)`` counted per order), answered with ``extensions.cost``, or with a
    ``THROTTLED`` error when the bucket holds less than the query asks for."""

    CONNECTIONS = {"customers": "customers", "subscriptionContracts": "contracts",
                   "subscriptionBillingAttempts": "attempts", "orders": "orders"}

    def __init__(self, bucket: float = 1000.0, restore: float = 50.0):
        self.nodes: dict[str, list[dict[str, Any]]] = {name: [] for name in self.CONNECTIONS.values()}
        self.maximum, self.restore = bucket, restore
        self.available, self._at = bucket, time.monotonic()
        self.throttled = 0
        self.queries: list[dict[str, Any]] = []  # every request body, parsed
        self.subscriptions: dict[str, dict[str, Any]] = {}  # webhook subscriptions by gid
        super().__init__()

    def _cost(self, requested: float) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self._at) * self.restore)
        self._at = now
        granted = self.available >= requested
        if granted:
            self.available -= requested
        status = {"maximumAvailable": self.maximum, "currentlyAvailable": round(self.available),
                  "restoreRate": self.restore}
        return granted, {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested if granted else None,
                                  "throttleStatus": status}}

    def script(self, seen: Seen, n: int) -> Reply:
        if seen.method != "POST" or not seen.path.endswith("/graphql.json"):
            return 404, JSON, b'{"errors":"Not Found"}', 0.0
        body = seen.json()
        self.queries.append(body)
        query, variables = body.get("query") or "", body.get("variables") or {}
        if "webhookSubscription" in query:
            return 200, JSON, json.dumps({"data": self._webhooks(query, variables)}).encode(), 0.0
        name = next((c for c in self.CONNECTIONS if f" {c}(" in query), None)
        if name is None:
            return 200, JSON, json.dumps({"errors": [{"message": "unknown query"}]}).encode(), 0.0
        first = int(variables["first"])
        requested = first + 1 + (first * int(variables.get("lines") or 0))
        granted, extensions = self._cost(requested)
        if not granted:
            self.throttled += 1
            errors = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
            return 200, JSON, json.dumps({"errors": errors, "extensions": extensions}).encode(), 0.0
        lo, hi = self._window(variables.get("query") or "")
        chosen = sorted((x for x in self.nodes[self.CONNECTIONS[name]] if lo <= x["createdAt"] < hi),
                        key=lambda x: (x["createdAt"], x["id"]))
        start = int(variables["after"]) if variables.get("after") else 0
        page = chosen[start:start + first]
        more = start + first < len(chosen)
        data = {name: {"nodes": page, "pageInfo": {"hasNextPage": more,
                                                    "endCursor": str(start + first) if page else None}}}
        return 200, JSON, json.dumps({"data": data, "extensions": extensions}).encode(), 0.0

    def _webhooks(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """webhookSubscriptions (paged 100 at a time), webhookSubscriptionCreate / Update."""
        if "webhookSubscriptionCreate(" in query:
            self._made = getattr(self, "_made", 0) + 1
            sid = f"gid://shopify/WebhookSubscription/{self._made}"
            given = variables["webhookSubscription"]
            if not str(given.get("uri", "")).startswith("https://"):
                errors = [{"field": ["webhookSubscription", "uri"], "message": "Address protocol is not supported"}]
                return {"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": errors}}
            self.subscriptions[sid] = {"id": sid, "topic": variables["topic"], "uri": given["uri"],
                                       "format": given.get("format", "JSON")}
            return {"webhookSubscriptionCreate": {"webhookSubscription": self.subscriptions[sid], "userErrors": []}}
        if "webhookSubscriptionUpdate(" in query:
            sub = self.subscriptions[variables["id"]]
            sub.update(variables["webhookSubscription"])
            return {"webhookSubscriptionUpdate": {"webhookSubscription": sub, "userErrors": []}}
        nodes = list(self.subscriptions.values())
        start = int(variables["after"]) if variables.get("after") else 0
        first = int(variables["first"])
        return {"webhookSubscriptions": {"nodes": nodes[start:start + first], "pageInfo": {
            "hasNextPage": start + first < len(nodes), "endCursor": str(start + first)}}}

    @staticmethod
    def _window(query: str) -> tuple[str, str]:
        """``created_at:>='A' created_at:<'B'`` -> (A, B); times compared as RFC 3339 UTC strings."""
        lo, hi = "", "9999"
        for term in query.split():
            if term.startswith("created_at:>="):
                lo = term.split(">=", 1)[1].strip("'\"")
            elif term.startswith("created_at:<"):
                hi = term.split("<", 1)[1].strip("'\"")
        return lo, hi


class FakeKlaviyoWebhooks(Fake):
    """Klaviyo's Webhooks API: ``/api/webhooks/`` (GET list, POST create) and ``/api/webhooks/{id}/``
    (GET, PATCH), JSON:API, ``endpoint_url`` shown truncated as Klaviyo does, ``secret_key`` kept
    and never shown."""

    def __init__(self) -> None:
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}
        super().__init__()

    def _resource(self, wid: str) -> dict[str, Any]:
        hook = self.webhooks[wid]
        parts = urlsplit(hook["endpoint_url"])
        shown = f"{parts.scheme}://{parts.netloc}/..."  # "truncated for security"
        return {"type": "webhook", "id": wid, "links": {"self": f"/api/webhooks/{wid}/"},
                "attributes": {"name": hook["name"], "endpoint_url": shown, "enabled": hook["enabled"]},
                "relationships": {"webhook-topics": {"data": [{"type": "webhook-topic", "id": t}
                                                              for t in hook["topics"]]}}}

    def _take(self, wid: str, data: dict[str, Any]) -> None:
        attrs = data.get("attributes") or {}
        hook = self.webhooks.setdefault(wid, {"name": "", "endpoint_url": "", "enabled": True, "topics": []})
        for key in ("name", "endpoint_url", "enabled"):
            if attrs.get(key) is not None:
                hook[key] = attrs[key]
        if attrs.get("secret_key"):
            self.secrets[wid] = attrs["secret_key"]
        topics = ((data.get("relationships") or {}).get("webhook-topics") or {}).get("data")
        if topics is not None:
            hook["topics"] = [t["id"] for t in topics]

    def script(self, seen: Seen, n: int) -> Reply:
        if not seen.headers.get("revision"):
            return 400, JSON, b'{"errors":[{"detail":"revision header missing"}]}', 0.0
        path = urlsplit(seen.path).path
        if path == "/api/webhooks/" and seen.method == "GET":
            body = {"data": [self._resource(w) for w in self.webhooks]}
            return 200, JSON, json.dumps(body).encode(), 0.0
        if path == "/api/webhooks/" and seen.method == "POST":
            data = seen.json()["data"]
            if not data["attributes"].get("secret_key"):
                return 400, JSON, b'{"errors":[{"detail":"secret_key is required"}]}', 0.0
            wid = f"01HWEBHOOK{len(self.webhooks) + 1:04d}"
            self._take(wid, data)
            return 201, JSON, json.dumps({"data": self._resource(wid)}).encode(), 0.0
        wid = path.rstrip("/").rsplit("/", 1)[1]
        if wid not in self.webhooks:
            return 404, JSON, b'{"errors":[{"detail":"not found"}]}', 0.0
        if seen.method == "PATCH":
            self._take(wid, seen.json()["data"])
        return 200, JSON, json.dumps({"data": self._resource(wid)}).encode(), 0.0

