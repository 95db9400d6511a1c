"""Test helpers: signing, draining the queues in-process, reading the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rq import SimpleWorker
from sqlalchemy import func, select

from connectors.stripe import verify as stripe_verify
from hub import jobs, scheduler
from hub.cli.processes import all_queue_names
from hub.outbound import outbox
from hub.runtime import Hub


def stripe_headers(body: bytes, secret: str = "whsec_test_secret", timestamp: int | None = None) -> dict[str, str]:
    return {"Stripe-Signature": stripe_verify.header(body, secret, timestamp), "Content-Type": "application/json"}


def drain(hub: Hub, rounds: int = 20) -> None:
    """Run every queued job in this thread until nothing is due (ingest, dispatch, deliver).

    Between rounds it sweeps with no grace period, so an action left queued without a job (waiting
    in a rate-limit line) is sent now instead of after HUB_STRANDED_AFTER_SECONDS.
    """
    hub.relay.flush()
    worker = jobs.make_worker(hub.redis, all_queue_names(), SimpleWorker)
    for _ in range(rounds):
        worker.work(burst=True, logging_level="WARNING")
        idle = outbox.dispatch(hub) == 0 and all(jobs.queue(hub.redis, q).count == 0 for q in all_queue_names())
        if idle and not any(scheduler.sweep(hub, stranded_after=0).values()):
            return


def count(hub: Hub, model: Any, *where: Any) -> int:
    with hub.store.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def rows(hub: Hub, model: Any, *where: Any) -> list[Any]:
    with hub.store.session() as s:
        return list(s.execute(select(model).where(*where)).scalars().all())


def recent(body: bytes, *fields: str) -> bytes:
    """A recorded fixture as if it happened now: its top-level time ``fields`` set to the current time
    (unix seconds where the fixture has a number, RFC 3339 otherwise). A fixture from months ago is
    history to the playbook (steps past ``missed_horizon`` are recorded, never sent)."""
    payload = json.loads(body)
    now = time.time()
    for name in fields:
        payload[name] = int(now) if isinstance(payload.get(name), int) else time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return json.dumps(payload).encode()


def stripe_event(type_: str, obj: dict[str, Any], *, event_id: str = "evt_1", created: int | None = None,
                 previous: dict[str, Any] | None = None) -> bytes:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return json.dumps({"id": event_id, "object": "event", "api_version": "2026-06-24.dahlia",
                       "created": created or int(time.time()), "livemode": False, "type": type_,
                       "data": data}).encode()


def process_env(hub: Hub) -> dict[str, str]:
    """The environment a ``hub`` subprocess needs to run with ``hub``'s settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") or k.startswith("HUB_TEST_")}
    for name, value in hub.settings.values.items():
        if value is None:
            continue
        env[name] = ",".join(value) if isinstance(value, list) else str(value)
    return env


def spawn(hub: Hub, *args: str) -> subprocess.Popen:
    """``hub <args>`` as a real process in its own session (HUB_TEST_PROC_LOG collects its stderr)."""
    hub_bin = str(Path(sys.executable).with_name("hub"))
    return subprocess.Popen([hub_bin, *args], env=process_env(hub), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(os.environ.get("HUB_TEST_PROC_LOG", os.devnull), "ab"))
