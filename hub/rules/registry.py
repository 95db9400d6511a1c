"""The rules in force for a process: reloaded when files change, and a broken file never
replaces rules that are running.

A reload runs on a thread of its own: request and worker threads keep the rules in force and never
wait for a load (YAML and the sandbox are bounded, see yamlpos.py and budget.py, but a rules folder
on a slow disk is not). A load that takes longer than RELOAD_TIME_LIMIT is discarded.

``watch()`` polls the files from a daemon thread, so a change is checked (and a broken edit
reported) when it is saved, not when the next event arrives; ``status()`` says which rules run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
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
        self.loaded_at = time.time()
        self.last_refused: dict[str, object] | None = None  # {"at": epoch seconds, "errors": [...]}
        self._watcher_pid: int | None = None
        self._stop = threading.Event()

    def _load(self) -> RuleSet:
        # the setting reaches the rules as ${HUB_DEFAULT_TIMEZONE} and as the planner's last fallback
        return load_rules(self.paths, {**os.environ, "HUB_DEFAULT_TIMEZONE": self.default_timezone})

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        out = []
        for f in rule_files(self.paths):
            stat = f.stat()
            out.append((str(f), stat.st_mtime, stat.st_size))
        return tuple(out)

    def watch(self) -> None:
        """Check the files every ``check_every`` seconds from a daemon thread (one per process:
        a forked server worker starts its own)."""
        with self._lock:
            if self._watcher_pid == os.getpid():
                return
            self._watcher_pid = os.getpid()

        stop, every, me = self._stop, self.check_every, weakref.ref(self)

        def loop() -> None:
            while not stop.wait(every):
                registry = me()
                if registry is None:  # nobody uses these rules any more
                    return
                try:
                    registry.current()
                except OSError as exc:  # a file removed mid-edit: the next round sees the result
                    log.warning("rules not checked: %s", exc)
                del registry

        threading.Thread(target=loop, name="rules-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, object]:
        with self._lock:
            ruleset = self._ruleset
            return {"version": ruleset.hash, "rules": len(ruleset.rules), "files": [str(f) for f in ruleset.files],
                    "loaded_at": _iso(self.loaded_at), "watching": self._watcher_pid == os.getpid(),
                    "last_refused": None if self.last_refused is None else
                    {"at": _iso(float(self.last_refused["at"])),  # type: ignore[arg-type]
                     "errors": self.last_refused["errors"]}}

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
            self._refuse(exc.errors)
            log.error("rules not reloaded; the previous rules stay in force:\n%s", exc)
            return
        took = time.monotonic() - started
        if took > RELOAD_TIME_LIMIT:
            self._refuse([f"loading the rules took {took:.0f} s (limit {RELOAD_TIME_LIMIT:.0f} s)"])
            log.error("rules not reloaded: loading took %.0f s; the previous rules stay in force", took)
            return
        self.last_errors = []
        with self._lock:
            if ruleset.hash != self._ruleset.hash:
                log.info("rules reloaded: %d rules, version %s", len(ruleset.rules), ruleset.hash)
                self.loaded_at = time.time()
            self._ruleset = ruleset

    def _refuse(self, errors: list[str]) -> None:
        self.last_errors = list(errors)
        self.last_refused = {"at": time.time(), "errors": list(errors)}


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
