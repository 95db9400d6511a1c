"""Segments, loyalty tiers, derived events and sync to the marketing tools (docs/segments.md)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .config import SegmentConfig, load_config
from .engine import recompute_all

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)
_SWEEP_LOCK = "hub:segments:sweep"
_last_sweep: float | None = None  # monotonic time of this process's last sweep


def sweep_if_due(hub: "Hub") -> dict[str, Any] | None:
    """Called from the scheduler loop: recompute everyone every HUB_SEGMENT_SWEEP_SECONDS. A Redis
    lock lets only one of several schedulers run each sweep."""
    global _last_sweep
    every = hub.settings["HUB_SEGMENT_SWEEP_SECONDS"]
    if not every or (_last_sweep is not None and time.monotonic() - _last_sweep < every):
        return None
    _last_sweep = time.monotonic()
    if not hub.redis.set(_SWEEP_LOCK, "1", nx=True, ex=max(int(every) - 1, 1)):
        return None
    counts = recompute_all(hub)
    if counts["changed"]:
        log.info("segment sweep: %s", counts)
    return counts


__all__ = ["SegmentConfig", "load_config", "recompute_all", "sweep_if_due"]
