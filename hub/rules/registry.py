"""The rules in force for a process: reloaded when files change, and a broken file never
replaces rules that are running."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterable

from hub.rules.loader import as_paths, load_rules, rule_files
from hub.rules.model import RuleSet
from hub.rules.yamlpos import LocatedError

log = logging.getLogger(__name__)


class RulesRegistry:
    def __init__(self, paths: str | Iterable[str | Path], check_every: float = 1.0, default_timezone: str = "UTC"):
        self.paths = as_paths(paths)
        self.check_every = check_every
        self.default_timezone = default_timezone
        self._lock = threading.Lock()
        self._ruleset = self._load()  # at start a broken file is fatal: nothing to fall back on
        self._stamp = self._fingerprint()
        self._checked = time.monotonic()
        self.last_errors: list[str] = []

    def _load(self) -> RuleSet:
        # the setting reaches the rules as ${HUB_DEFAULT_TIMEZONE} and as the planner's last fallback
        return load_rules(self.paths, {**os.environ, "HUB_DEFAULT_TIMEZONE": self.default_timezone})

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        out = []
        for f in rule_files(self.paths):
            stat = f.stat()
            out.append((str(f), stat.st_mtime, stat.st_size))
        return tuple(out)

    def current(self) -> RuleSet:
        """The newest valid rules (checks the files at most every ``check_every`` seconds)."""
        with self._lock:
            if time.monotonic() - self._checked >= self.check_every:
                self._checked = time.monotonic()
                stamp = self._fingerprint()
                if stamp != self._stamp:
                    self._stamp = stamp
                    self._reload()
            return self._ruleset

    def _reload(self) -> None:
        try:
            ruleset = self._load()
        except LocatedError as exc:
            self.last_errors = exc.errors
            log.error("rules not reloaded; the previous rules stay in force:\n%s", exc)
            return
        self.last_errors = []
        if ruleset.hash != self._ruleset.hash:
            log.info("rules reloaded: %d rules, version %s", len(ruleset.rules), ruleset.hash)
        self._ruleset = ruleset
