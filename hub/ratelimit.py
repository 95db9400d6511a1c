"""Vendor rate limits shared by every worker on every machine, enforced atomically in Redis.

One limiter per (connector, account, bucket). Each bucket has one or more windows, "N requests
per W seconds", and a request may go only when every window has room (a sliding-window log of
the actual send times: exact for vendors that count per fixed or sliding window). Each window is
counted ``MARGIN`` longer than the vendor's, which absorbs clock and network jitter.

A request that may not go now is given a *slot*: waiting requests form a line spaced W/N apart,
so they come back one at a time instead of all at once. A request coming back for its slot skips
the line; if the window is still full (it came back late and others went meanwhile), it is told
how long until there is room. A 429 pauses the bucket for ``Retry-After`` so no worker hammers it.

Everything runs in one Lua script with Redis' clock, so workers' clocks never matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from redis import Redis

from .errors import RetriableError

MARGIN = 0.01
#: waiting requests are spaced this much wider than the limit allows: a request that comes back a
#: little late for its slot (dispatch latency varies) then still finds the window open instead of
#: waiting a second time; it costs at most this share of the throughput under a backlog
LINE_SLACK = 0.01
#: a reservation not claimed within this long is forgotten (its action was cancelled or lost)
RESERVATION_TTL = 600

# KEYS: line, pause, held, log_1..log_n
# ARGV: token, margin, n, N_1, W_1, ..., N_n, W_n, reservation ttl, line slack
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local token, margin, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local free = now
local spacing = 0
local longest = 0
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > free then free = paused end
for i = 1, n do
  local limit, window = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i]) * (1 + margin)
  local log = KEYS[3 + i]
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local count = redis.call('ZCARD', log)
  if count >= limit then
    local oldest = redis.call('ZRANGE', log, count - limit, count - limit, 'WITHSCORES')
    local room = tonumber(oldest[2]) + window
    if room > free then free = room end
  end
  if window / limit > spacing then spacing = window / limit * (1 + tonumber(ARGV[5 + 2 * n])) end
  if window > longest then longest = window end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4 + 2 * n]))
local reserved = redis.call('ZSCORE', KEYS[3], token)
local line = tonumber(redis.call('GET', KEYS[1]) or '0')
if free <= now and (reserved or line <= now) then
  for i = 1, n do
    redis.call('ZADD', KEYS[3 + i], now, token .. ':' .. t[1] .. t[2])
    redis.call('EXPIRE', KEYS[3 + i], math.ceil(longest) + 1)
  end
  if reserved then redis.call('ZREM', KEYS[3], token) end
  return {1, '0'}
end
local slot = free
if not reserved then
  if line > slot then slot = line end
  redis.call('SET', KEYS[1], tostring(slot + spacing), 'EX', math.ceil(slot + spacing - now) + 60)
end
redis.call('ZADD', KEYS[3], slot, token)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4 + 2 * n]))
return {0, tostring(slot - now)}
"""

# KEYS: pause; ARGV: seconds
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local untilt = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilt > current then
  redis.call('SET', KEYS[1], tostring(untilt), 'EX', math.ceil(tonumber(ARGV[1])) + 1)
end
return tostring(math.max(untilt, current) - now)
"""

# KEYS: pause; returns the seconds left on a pause (0 when not paused)
_PAUSED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local untilt = tonumber(redis.call('GET', KEYS[1]) or '0')
return tostring(math.max(untilt - now, 0))
"""


class Throttled(RetriableError):
    """Raised inside an action when a further request must wait ``wait`` seconds for the rate
    limit: delivery puts the action back for that long without using an attempt."""

    def __init__(self, wait: float):
        super().__init__(f"rate limit: waiting {wait:.2f}s", retry_after=wait)
        self.wait = wait


@dataclass(frozen=True)
class Decision:
    """``granted``: send now. Otherwise come back in ``wait`` seconds (a slot is kept for you)."""

    granted: bool
    wait: float = 0.0


Windows = Sequence[tuple[int, float]]


class RateLimiter:
    """Atomic shared limiter. ``key`` names (connector, account, bucket); see ``limit_key``."""

    def __init__(self, redis: Redis, prefix: str = "hub:rl"):
        self.redis = redis
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._pause = redis.register_script(_PAUSE)
        self._paused = redis.register_script(_PAUSED)

    def acquire(self, key: str, windows: Windows, token: str) -> Decision:
        """Take one request from every window of ``key`` now, or be told when to come back.

        ``token`` identifies the caller across attempts (the action key): coming back with the
        same token claims the slot it was given instead of joining the end of the line.
        """
        if not windows:
            return Decision(True)
        base = f"{self.prefix}:{key}"
        keys = [f"{base}:line", f"{base}:pause", f"{base}:held"] + [f"{base}:log:{n}/{w:g}" for n, w in windows]
        args: list[str | int | float] = [token, MARGIN, len(windows)]
        for n, w in windows:
            args += [int(n), float(w)]
        args += [RESERVATION_TTL, LINE_SLACK]
        granted, wait = self._acquire(keys=keys, args=args)
        return Decision(bool(int(granted)), max(float(wait), 0.0))

    def pause(self, key: str, seconds: float) -> float:
        """Let nobody send on ``key`` for ``seconds`` (after a 429). Returns the pause in force."""
        return float(self._pause(keys=[f"{self.prefix}:{key}:pause"], args=[max(seconds, 0.0)]))

    def paused_for(self, key: str) -> float:
        return float(self._paused(keys=[f"{self.prefix}:{key}:pause"]))


def limit_key(connector: str, account: str, bucket: str) -> str:
    return f"{connector}:{account}:{bucket}"


def describe(windows: Windows) -> str:
    """``((5, 1.0),)`` -> ``5/1s``; several windows joined by ``+``."""
    return "+".join(f"{n}/{w:g}s" for n, w in windows)
