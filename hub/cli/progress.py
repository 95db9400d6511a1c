"""Progress of long commands, one helper for all of them (import, replay, backfill, changes apply,
segments recompute): a bar with counts and ETA on a terminal, plain periodic lines otherwise (logs and
pipes get the first update, then one line every ``every`` seconds and a last one, never control
characters). Everything goes to stderr, so ``--json`` output on stdout stays clean."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import click


class Progress:
    """``advance(done, detail=None, total=None)``: how much is done so far (items, or with ``percent`` a
    share of ``total``), optionally a line of counts to show beside it, and the total once it is known."""

    def __init__(self, label: str, total: float, every: float, percent: bool, tty: bool):
        self.label, self.total, self.every, self.percent, self.tty = label, total, every, percent, tty
        self.done: float = 0
        self.detail: str | None = None
        self.started = time.monotonic()
        self.last: float | None = None
        self.bar: Any = None

    def __call__(self, done: float, detail: str | None = None, total: float | None = None) -> None:
        self.done, self.detail = done, detail or self.detail
        self.total = self.total if total is None else total
        if self.tty:
            self._draw()
            return
        now = time.monotonic()
        if done < self.total and (self.last is None or now - self.last >= self.every):
            self.last = now
            click.echo(f"{self._line()}{self._eta(now)}", err=True)

    def _line(self) -> str:
        shown = f"{self.done / self.total:.0%}" if self.percent and self.total else \
            f"{int(self.done)}/{int(self.total)}"
        return f"{self.label}: {shown}" + (f", {self.detail}" if self.detail else "")

    def _eta(self, now: float) -> str:
        if self.done <= 0 or self.done >= self.total:
            return ""
        return f", about {round((now - self.started) * (self.total - self.done) / self.done)} s left"

    def _draw(self) -> None:
        size = 1000 if self.percent else int(self.total)
        if self.bar is None:
            self.bar = click.progressbar(length=max(size, 1), label=self.label, show_eta=True,
                                         show_pos=not self.percent, show_percent=True, file=sys.stderr)
            self.bar.__enter__()
        self.bar.length = max(size, 1)
        if self.detail:
            self.bar.label = f"{self.label} {self.detail}"
        position = int(self.done / self.total * size) if self.percent and self.total else int(self.done)
        self.bar.update(position - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            return
        if not self.tty:
            click.echo(f"{self._line()} in {time.monotonic() - self.started:.1f} s", err=True)


@contextmanager
def progress(label: str, total: float, *, every: float = 5.0, percent: bool = False) -> Iterator[Progress]:
    """Yields a ``Progress``: call it as work advances; the last line (or the finished bar) comes at the end."""
    shown = Progress(label, total, every, percent, sys.stderr.isatty())
    try:
        yield shown
    finally:
        shown.close()
