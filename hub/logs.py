"""Logging with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os


class ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from hub.runtime import _current

        if _current is not None:
            message = record.getMessage()
            scrubbed = _current.scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, ()
        return True


def configure_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("HUB_LOG_LEVEL") or "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        level = "INFO"  # an unknown HUB_LOG_LEVEL is refused, by name, where the settings are validated
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
