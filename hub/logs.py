"""Logging with secrets scrubbed from every record, its traceback included.

``HUB_LOG_FORMAT=text`` (default): one readable line per record. ``HUB_LOG_FORMAT=json``: one JSON object
per line with ``time``, ``level``, ``logger``, ``message``, ``exc`` (the traceback, if any) and the ids
of what the process was working on where known (``delivery_id``, ``event_id``, ``action_id``,
``subscriber_id``, ``trace_id``): set with ``context(...)`` around a job, or passed as ``extra=``.
Both formatters scrub the finished text (message and traceback) with the hub's ``SecretScrubber``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

CONTEXT_FIELDS = ("delivery_id", "event_id", "action_id", "subscriber_id", "trace_id")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("hub_log_context", default={})


@contextmanager
def context(**ids: Any) -> Iterator[None]:
    """Attach ids (``delivery_id=...``) to every record logged in this block (thread- and job-local)."""
    token = _context.set({**_context.get(), "_scoped": True, **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: Any) -> None:
    """Attach ids for the rest of the enclosing ``context`` block (e.g. each event a job records); outside
    any block (a CLI command, the scheduler) nothing, so no id outlives the work it belongs to."""
    if _context.get().get("_scoped"):
        _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


_scrubber: Callable[[str], str] | None = None  # the process's Hub's (set by hub/runtime.py)


def use_scrubber(scrub: Callable[[str], str] | None) -> None:
    global _scrubber
    _scrubber = scrub


def _scrub(text: str) -> str:
    return _scrubber(text) if _scrubber is not None else text


class ScrubSecrets(logging.Filter):
    """Scrubs the message (for handlers that keep their own formatter) and attaches the context ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        for name, value in _context.get().items():
            if not name.startswith("_") and not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n, None) is not None)
        text = super().format(record)
        if ids:
            first, _, rest = text.partition("\n")
            text = f"{first} [{ids}]" + (f"\n{rest}" if rest else "")
        return _scrub(text)  # the traceback too


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": _scrub(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = _scrub(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = _scrub(self.formatStack(record.stack_info))
        return json.dumps(out, default=str)


def formatter(kind: str | None = None) -> logging.Formatter:
    kind = (kind or os.environ.get("HUB_LOG_FORMAT") or "text").lower()
    return JsonFormatter() if kind == "json" else TextFormatter()


def configure_logging(level: str | None = None, kind: str | None = None) -> None:
    level = (level or os.environ.get("HUB_LOG_LEVEL") or "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        level = "INFO"  # an unknown HUB_LOG_LEVEL is refused, by name, where the settings are validated
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(kind))
    handler.addFilter(ScrubSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
