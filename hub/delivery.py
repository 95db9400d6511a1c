"""The deliver worker: lease one action, call the connector, record the outcome.

Outcomes by what to do next: done (2xx or dry run); retriable -> rescheduled with jittered
exponential backoff (never sooner than ``Retry-After``); permanent -> failed with the response
kept; retries exhausted -> dead. The worker never sleeps to wait.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import update

import connectors
from connectors.base import ActionContext

from . import state
from .errors import ActionError, PermanentError, RetriableError
from .outbox import backoff_seconds
from .store import Action, Attempt, Subscriber, utcnow
from .store.models import ActionStatus

if TYPE_CHECKING:
    from .runtime import Hub

log = logging.getLogger(__name__)


def deliver(hub: "Hub", action_id: int) -> str | None:
    """Send one queued action. Returns the new status, or None if another worker owns it."""
    settings = hub.settings
    now = utcnow()
    with hub.store.session() as session:
        leased = session.execute(update(Action).where(
            Action.id == action_id, Action.status == ActionStatus.QUEUED,
        ).values(status=ActionStatus.SENDING, attempts=Action.attempts + 1, updated_at=now,
                 lease_until=now + timedelta(seconds=settings["HUB_LEASE_SECONDS"])).returning(Action.id)).scalar()
        if leased is None:
            return None
        action = session.get(Action, action_id)
        assert action is not None
        subscriber = session.get(Subscriber, action.subscriber_id) if action.subscriber_id else None
        profile = state.profile(session, subscriber)
        snapshot = {"key": action.key, "connector": action.connector, "name": action.name,
                    "params": action.params, "attempts": action.attempts}

    started = utcnow()
    outcome_name, status_code, request, response, error, retry_after = _call(hub, snapshot, profile)
    return _record(hub, action_id, snapshot["attempts"], started, outcome_name, status_code, request, response,
                   error, retry_after)


def _call(hub: "Hub", action: dict[str, Any], profile: dict[str, Any]) -> tuple[
        str, int | None, Any, Any, str | None, float | None]:
    found = connectors.action_spec(f"{action['connector']}.{action['name']}")
    try:
        if found is None:
            raise PermanentError(f"unknown action {action['connector']}.{action['name']}")
        connector, spec = found
        try:
            params = spec.schema().load(action["params"])
        except ValidationError as exc:
            raise PermanentError(f"invalid parameters: {exc.normalized_messages()}") from exc
        ctx = ActionContext(key=action["key"], subscriber={**profile, "external_id": (profile.get("external_ids")
                                                                                     or {}).get(connector.name)})
        outcome = spec.run(connector.client(hub.settings), params, ctx)
        return ("dry_run" if outcome.dry_run else "ok"), outcome.status_code, outcome.request, outcome.response, \
            None, None
    except RetriableError as exc:
        return "retry", exc.status, None, exc.response, hub.scrub(str(exc)), exc.retry_after
    except ActionError as exc:
        return "failed", exc.status, None, exc.response, hub.scrub(str(exc)), None
    except Exception as exc:  # an unexpected bug: retry later rather than lose the action
        log.exception("action %s raised", action["key"])
        return "retry", None, None, None, hub.scrub(f"{type(exc).__name__}: {exc}"), None


def _record(hub: "Hub", action_id: int, attempt: int, started: Any, outcome: str, status_code: int | None,
            request: Any, response: Any, error: str | None, retry_after: float | None) -> str:
    settings = hub.settings
    now = utcnow()
    values: dict[str, Any] = {"lease_until": None, "last_status_code": status_code, "last_error": error,
                              "updated_at": now}
    if outcome in ("ok", "dry_run"):
        values["status"] = ActionStatus.DONE
    elif outcome == "failed":
        values["status"] = ActionStatus.FAILED
    elif attempt >= settings["HUB_RETRY_MAX_ATTEMPTS"]:
        values["status"], outcome = ActionStatus.DEAD, "dead"
    else:
        delay = backoff_seconds(attempt, settings["HUB_RETRY_BASE_SECONDS"], settings["HUB_RETRY_MAX_SECONDS"],
                                random.random())
        if retry_after is not None:  # the server's hint wins over our backoff
            delay = retry_after + random.uniform(0, 0.5)
        values["status"], values["due_at"] = ActionStatus.SCHEDULED, now + timedelta(seconds=delay)
    with hub.store.session() as session:
        session.execute(update(Action).where(Action.id == action_id).values(**values))
        session.add(Attempt(action_id=action_id, number=attempt, started_at=started, finished_at=now,
                            outcome=outcome, status_code=status_code, request=request, response=response,
                            error=error))
    log.info("action %s attempt %s: %s%s", action_id, attempt, outcome, f" ({error})" if error else "")
    return values["status"]
