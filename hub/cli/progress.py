"""Progress of long commands: a bar with counts and ETA on a terminal, plain periodic lines otherwise
(logs and pipes get one line every ``every`` seconds and a last one, never control characters)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import click


@contextmanager
def progress(label: str, total: int, *, every: float = 5.0) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(done)``: call it with the number of items done so far."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, show_eta=True, show_pos=True, file=sys.stderr) as bar:
            shown = 0

            def advance(done: int) -> None:
                nonlocal shown
                bar.update(done - shown)
                shown = done

            yield advance
        return
    started = last = time.monotonic()
    state = {"done": 0}

    def advance(done: int) -> None:
        nonlocal last
        state["done"] = done
        if time.monotonic() - last >= every and done < total:
            last = time.monotonic()
            rate = done / max(last - started, 1e-9)
            eta = f", about {round((total - done) / rate)} s left" if rate else ""
            click.echo(f"{label}: {done}/{total}{eta}", err=True)

    yield advance
    click.echo(f"{label}: {state['done']}/{total} in {time.monotonic() - started:.1f} s", err=True)
