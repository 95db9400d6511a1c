"""The rules in force for a process: reloaded when files change, and a broken file never
replaces rules that are running.

A reload runs on a thread of its own: request and worker threads keep the rules in force and never
wait for a load (YAML and the sandbox are bounded, see yamlpos.py and budget.py, but a rules folder
on a slow disk is not). A load that takes longer than RELOAD_TIME_LIMIT is discarded."""

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

RELOAD_TIME_LIMIT = 30.0


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
        self._loader: threading.Thread | None = None

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
                if stamp != self._stamp and (self._loader is None or not self._loader.is_alive()):
                    self._stamp = stamp
                    self._loader = threading.Thread(target=self._reload, name="rules-reload", daemon=True)
                    self._loader.start()
            return self._ruleset

    def wait_reloaded(self, timeout: float = RELOAD_TIME_LIMIT) -> None:
        """Wait for a reload in progress (tests, and ``hub rules`` tools that want the new set)."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)

    def _reload(self) -> None:
        started = time.monotonic()
        try:
            ruleset = self._load()
        except LocatedError as exc:
            self.last_errors = exc.errors
            log.error("rules not reloaded; the previous rules stay in force:\n%s", exc)
            return
        took = time.monotonic() - started
        if took > RELOAD_TIME_LIMIT:
            self.last_errors = [f"loading the rules took {took:.0f} s (limit {RELOAD_TIME_LIMIT:.0f} s)"]
            log.error("rules not reloaded: loading took %.0f s; the previous rules stay in force", took)
            return
        self.last_errors = []
        if ruleset.hash != self._ruleset.hash:
            log.info("rules reloaded: %d rules, version %s", len(ruleset.rules), ruleset.hash)
        with self._lock:
            self._ruleset = ruleset
