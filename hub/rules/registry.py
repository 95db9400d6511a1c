"""The rules in force for a process: reloaded when files change, and a broken file never
replaces rules that are running.

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


class RulesRegistry:
    def __init__(self, paths: str | Iterable[str | Path], check_every: float = 1.0):
        self.paths = as_paths(paths)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._ruleset = load_rules(self.paths)  # at start a broken file is fatal: nothing to fall back on
        self._stamp = self._fingerprint()
        self._checked = time.monotonic()
        self.last_errors: list[str] = []
        self.loaded_at = time.time()
        self.last_refused: dict[str, object] | None = None  # {"at": epoch seconds, "errors": [...]}
        self._watcher_pid: int | None = None
        self._stop = threading.Event()

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
            ruleset = load_rules(self.paths)
        except LocatedError as exc:
            self.last_errors = exc.errors
            self.last_refused = {"at": time.time(), "errors": list(exc.errors)}
            log.error("rules not reloaded; the previous rules stay in force:\n%s", exc)
            return
        self.last_errors = []
        if ruleset.hash != self._ruleset.hash:
            log.info("rules reloaded: %d rules, version %s", len(ruleset.rules), ruleset.hash)
            self.loaded_at = time.time()
        self._ruleset = ruleset


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
