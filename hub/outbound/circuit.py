"""Destination health in Redis, shared by every worker: the circuit breaker and the credentials mark.

Circuit: closed (calls flow) -> after ``failures`` consecutive retriable failures (5xx, timeouts,
connection errors) it opens: that destination's actions wait ``cooldown`` seconds while the others
flow -> half-open: one worker gets to send one probe; success closes the circuit, failure opens
it for another cooldown. 4xx answers (the destination is up) and 429s (handled by the rate
limiter's pause) do not count.

Credentials: a 401/403 marks the connector's credentials invalid (shown by ``hub connectors`` and
``/readyz``); a later successful call or ``hub connectors test`` clears the mark.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
PROBE_SECONDS = 60  # how long a probe may take before another worker may probe instead

# KEYS: circuit hash, probe key; ARGV: probe_ttl_seconds
# returns {allowed(0/1), wait, state}
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'open' then return {1, '0', 'closed'} end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now < open_until then return {0, tostring(open_until - now), 'open'} end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) then return {1, '0', 'half-open'} end
return {0, tostring(math.max(redis.call('TTL', KEYS[2]), 1)), 'half-open'}
"""

# KEYS: circuit hash, probe key; ARGV: threshold, cooldown, error
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[3], 'last_failure_at', tostring(now))
redis.call('EXPIRE', KEYS[1], 86400)
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' or failures >= tonumber(ARGV[1]) then
  if state ~= 'open' then redis.call('HSET', KEYS[1], 'opened_at', tostring(now)) end
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[2])))
  redis.call('DEL', KEYS[2])
  return 'open'
end
return 'closed'
"""


@dataclass(frozen=True)
class Gate:
    """``allowed`` to call now (``probe``: as the half-open circuit's single probe), else ``wait``."""

    allowed: bool
    wait: float = 0.0
    probe: bool = False
    state: str = CLOSED


class Circuit:
    def __init__(self, redis: Redis, prefix: str = "hub:circuit"):
        self.redis = redis
        self.prefix = prefix
        self._allow = redis.register_script(_ALLOW)
        self._failure = redis.register_script(_FAILURE)

    def _keys(self, name: str) -> list[str]:
        return [f"{self.prefix}:{name}", f"{self.prefix}:{name}:probe"]

    def allow(self, name: str) -> Gate:
        allowed, wait, state = self._allow(keys=self._keys(name), args=[PROBE_SECONDS])
        state = state.decode() if isinstance(state, bytes) else state
        return Gate(bool(int(allowed)), float(wait), probe=bool(int(allowed)) and state == HALF_OPEN, state=state)

    def failure(self, name: str, threshold: int, cooldown: float, error: str = "") -> str:
        """Count one retriable failure; returns the state after it (``open`` once it tripped)."""
        state = self._failure(keys=self._keys(name), args=[threshold, cooldown, error[:300]])
        return state.decode() if isinstance(state, bytes) else state

    def success(self, name: str, pipe: Any = None) -> None:
        (pipe or self.redis).delete(*self._keys(name))

    def state(self, name: str) -> dict[str, Any]:
        """For operators: state (closed/open/half-open), consecutive failures, seconds until a probe."""
        raw = {k.decode(): v.decode() for k, v in self.redis.hgetall(self._keys(name)[0]).items()}
        state = raw.get("state") or CLOSED
        out: dict[str, Any] = {"state": state, "failures": int(raw.get("failures", 0))}
        if state == OPEN:
            left = float(raw.get("open_until", 0)) - _redis_now(self.redis)
            if left <= 0:
                out["state"] = HALF_OPEN
            out["probe_in"] = round(max(left, 0.0), 1)
        if raw.get("last_error"):
            out["last_error"] = raw["last_error"]
        return out


class Credentials:
    """The ``credentials invalid`` mark per connector."""

    def __init__(self, redis: Redis, prefix: str = "hub:credentials"):
        self.redis = redis
        self.prefix = prefix

    def mark_invalid(self, name: str, status: int | None, error: str) -> None:
        self.redis.set(f"{self.prefix}:{name}", json.dumps({"status": status, "error": error[:300],
                                                             "since": time.time()}))

    def clear(self, name: str, pipe: Any = None) -> None:
        (pipe or self.redis).delete(f"{self.prefix}:{name}")

    def invalid(self, name: str) -> dict[str, Any] | None:
        """None when no call was refused since the last success; else status, error and since."""
        raw = self.redis.get(f"{self.prefix}:{name}")
        return json.loads(raw) if raw else None


def _redis_now(redis: Redis) -> float:
    seconds, micros = redis.time()
    return seconds + micros / 1e6
