"""Reaching the running hub from a second terminal.

With the embedded queue (no ``HUB_REDIS_URL``) every process has its own in-memory queue and its
own reading of the environment, so a command that acts on the hub (``replay``) or reports its
state (``connectors``, ``rules status``) asks the running hub's admin API instead of doing the work
itself. With Redis configured the processes share the queues and the command can act directly.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from hub.cli.errors import RunningHubError


def embedded() -> bool:
    """True when this process would get an in-memory queue of its own (no HUB_REDIS_URL)."""
    from hub.runtime import current

    return current().settings.embedded_queue


def call(url: str, method: str, path: str, **kwargs: Any) -> Any:
    """``method path`` on the running hub's API; RunningHubError (exit 2) when there is none."""
    headers = {}
    token = os.environ.get("HUB_ADMIN_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = f"{url.rstrip('/')}{path}"
    try:
        answer = requests.request(method, target, headers=headers, timeout=30, **kwargs)
    except requests.ConnectionError:
        raise RunningHubError(f"no hub is running at {url} (start it with `hub run`, or give --url)")
    if answer.status_code == 401:
        raise RunningHubError(f"the hub at {url} refused the admin token (set HUB_ADMIN_TOKEN to its value)")
    if answer.status_code == 400:
        try:
            reason = answer.json().get("message") or answer.json().get("error")
        except ValueError:
            reason = answer.text.strip()[:200]
        raise RunningHubError(f"the hub at {url} refused the request: {reason}")
    if answer.status_code >= 300:
        raise RunningHubError(f"the hub at {url} answered {answer.status_code} to {method} {path}")
    return answer.json()
