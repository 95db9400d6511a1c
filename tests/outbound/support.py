"""Test-local connectors and helpers for the delivery machinery (no rules involved)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields

import connectors
from connectors.base import ActionContext, ActionSpec, BatchSpec, Connector, ItemOutcome
from connectors.http import ApiClient, Outcome
from hub.kernel.errors import PermanentError, RetriableError
from hub.runtime import Hub
from hub.store import Action, insert_ignore, utcnow


class NoteParams(Schema):
    text = fields.String(required=True)
    group = fields.String(load_default="g1")
    fail = fields.String(load_default=None)  # "retry" | "permanent": that item fails inside a batch


def post_note(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return client.request("POST", "/notes", json_body={"text": params["text"], "key": ctx.key})


def post_notes(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
               ) -> tuple[Outcome, list[ItemOutcome]]:
    outcome = client.request("POST", "/notes/batch", json_body={"items": [p["text"] for p, _ in items]})
    out = []
    for params, _ in items:
        if params.get("fail") == "retry":
            out.append(ItemOutcome(ok=False, error=RetriableError("item rejected for now", status=207)))
        elif params.get("fail") == "permanent":
            out.append(ItemOutcome(ok=False, error=PermanentError("item invalid", status=207)))
        else:
            out.append(ItemOutcome(ok=True))
    return outcome, out


class FakeConnector(Connector):
    """A destination at ``url`` with a single and a batchable action."""

    rate_limits: dict[str, Any] = {}
    actions = {
        "note": ActionSpec("note", NoteParams, post_note),
        "bulk_note": ActionSpec("bulk_note", NoteParams, post_note,
                                batch=BatchSpec(3, post_notes, lambda params: params["group"])),
    }

    def __init__(self, name: str, url: str, *, limits: dict[str, Any] | None = None, failures: int = 3,
                 cooldown: float = 30.0):
        self.name = name  # type: ignore[misc]
        self.url = url
        self.rate_limits = limits or {}  # type: ignore[misc]
        self.circuit_failures = failures  # type: ignore[misc]
        self.circuit_cooldown = cooldown  # type: ignore[misc]
        self.check_path = "/me"  # type: ignore[misc]

    def dry_run(self, settings: Any) -> bool:
        return False

    def client(self, settings: Any) -> ApiClient:
        return ApiClient(self.url, {"Authorization": "Bearer secret-token"}, timeout=2.0)


def register(monkeypatch: Any, connector: Connector) -> Connector:
    monkeypatch.setitem(connectors.REGISTRY, connector.name, connector)
    return connector


def add_actions(hub: Hub, connector: str, name: str, params: list[dict[str, Any]], *,
                due_in: float = 0.0) -> list[int]:
    """Insert scheduled actions straight into the outbox (as the planner would)."""
    now = utcnow()
    rows = [{"key": f"test:{uuid.uuid4().hex}", "rule_id": "test", "connector": connector, "name": name,
             "params": p, "due_at": now + timedelta(seconds=due_in), "status": "scheduled", "attempts": 0,
             "dispatch_seq": 0, "dry_run": False, "created_at": now, "updated_at": now} for p in params]
    with hub.store.session() as session:
        return insert_ignore(session, Action.__table__, rows, ["key"])
