"""Vendor rate limits shared by every worker on every machine, enforced atomically in Redis.

One limiter per (connector, account, bucket). Each bucket has one or more windows, "N requests
per W seconds", and a request may go only when every window has room: a sliding-window log of
the actual send times, each window counted ``MARGIN`` longer than the vendor's to absorb clock
and network jitter. That check alone decides safety; everything else decides who goes first.

Rooms: with the log as it is, the next N requests can go at known times: now for each free
place, then as each logged request leaves its window (``log time + W``). A request that may not
go now *books* the next room nobody has booked and is told to come back then; at most N
requests are booked, so a booking is never more than one window ahead and always points at a
room an actual request will free (nothing is planned from estimates, so late returns never pile
up into a line that has drifted ahead of reality). When every room of the window is booked the
request is *full*: it should not wait at all but stay in the outbox until a room is booked for it
(hub/delivery.py hands each room freed by a send to the next waiting action).

A request coming back with a booking takes any room that is free (the earliest room, whoever's it
was); one without a booking goes now only if there are more free rooms than bookings. A 429 pauses
the bucket for ``Retry-After``: no room opens before the pause ends.

Everything runs in Lua with Redis' clock, so workers' clocks never matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from redis import Redis

from hub.kernel.errors import RetriableError

MARGIN = 0.01
#: a booking its holder has not used this long after its room opened is dropped (the action was
#: cancelled or its worker died); the room goes to whoever comes first
BOOKING_GRACE = 5.0

# Rooms of the windows as they are: rooms[k] = when k more requests fit (k = 1..horizon), the
# latest over every window; a pause pushes every room to its end.
_ROOMS = """
local function rooms(now, margin, n, first_log, pause)
  local out, horizon, spacing = {}, nil, 0
  for i = 1, n do
    local limit, window = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i]) * (1 + margin)
    local log = KEYS[first_log + i - 1]
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
    local recent = redis.call('ZRANGE', log, -limit, -1, 'WITHSCORES')
    local count = #recent / 2
    if horizon == nil or limit < horizon then horizon = limit end
    if window / limit > spacing then spacing = window / limit end
    for k = 1, limit do
      local at = now
      local index = count - limit + k
      if index >= 1 then at = tonumber(recent[2 * index]) + window end
      if at < pause then at = pause end
      if out[k] == nil or at > out[k] then out[k] = at end
    end
  end
  return out, horizon, spacing
end
"""

# KEYS: bookings, pause, log_1..log_n
# ARGV: token, margin, n, N_1, W_1, ..., N_n, W_n, grace
# returns {granted 0/1, wait, 'granted' | 'booked' | 'full'}
_ACQUIRE = _ROOMS + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local token, margin, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local grace = tonumber(ARGV[4 + 2 * n])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - grace)
local mine = redis.call('ZSCORE', KEYS[1], token)
local others = redis.call('ZCARD', KEYS[1]) - (mine and 1 or 0)
local room, horizon, spacing = rooms(now, margin, n, 3, pause)
local free = 0
for k = 1, horizon do if room[k] <= now then free = free + 1 end end
if (mine and free >= 1) or (not mine and free > others) then
  local longest = 0
  for i = 1, n do
    local window = tonumber(ARGV[3 + 2 * i]) * (1 + margin)
    redis.call('ZADD', KEYS[2 + i], now, token .. ':' .. t[1] .. t[2])
    redis.call('EXPIRE', KEYS[2 + i], math.ceil(window) + 1)
  end
  if mine then redis.call('ZREM', KEYS[1], token) end
  return {1, '0', 'granted'}
end
local slot
if mine then
  slot = tonumber(mine)
  if slot <= now then slot = room[1] end  -- its room went to someone else: the next one
elseif others < horizon then
  slot = room[others + 1]
else  -- every room of the window is booked: a rough idea of when this one's turn comes
  return {0, tostring(room[horizon] - now + (others - horizon + 1) * spacing), 'full'}
end
redis.call('ZADD', KEYS[1], slot, token)
redis.call('EXPIRE', KEYS[1], math.ceil(slot - now + grace) + 1)
return {0, tostring(slot - now), 'booked'}
"""

# KEYS: bookings; ARGV: grace, horizon -> how many more requests may book (horizon - bookings)
_OPEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return math.max(tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1]), 0)
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
    """Raised inside an action when a further request may not go now: delivery puts the action
    back (booked: for ``wait`` seconds; full: in the outbox line) without using an attempt."""

    def __init__(self, wait: float, booked: bool = True):
        super().__init__(f"rate limit: waiting {wait:.2f}s", retry_after=wait)
        self.wait = wait
        self.booked = booked


@dataclass(frozen=True)
class Decision:
    """``granted``: send now. ``booked``: come back in ``wait`` seconds, a room is kept for you.
    ``full``: every room of the window is booked; ``wait`` is only a rough estimate of your turn."""

    granted: bool
    wait: float = 0.0
    state: Literal["granted", "booked", "full"] = "granted"

    @property
    def booked(self) -> bool:
        return self.state == "booked"


Windows = Sequence[tuple[int, float]]


class RateLimiter:
    """Atomic shared limiter. ``key`` names (connector, account, bucket); see ``limit_key``."""

    def __init__(self, redis: Redis, prefix: str = "hub:rl"):
        self.redis = redis
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._open = redis.register_script(_OPEN)
        self._pause = redis.register_script(_PAUSE)
        self._paused = redis.register_script(_PAUSED)

    def acquire(self, key: str, windows: Windows, token: str) -> Decision:
        """Take one request from every window of ``key`` now, or book the next free room.

        ``token`` identifies the caller across attempts (the action key): coming back with the
        same token uses its booking instead of queueing behind the others.
        """
        if not windows:
            return Decision(True)
        base = f"{self.prefix}:{key}"
        keys = [f"{base}:booked", f"{base}:pause"] + [f"{base}:log:{n}/{w:g}" for n, w in windows]
        args: list[str | int | float] = [token, MARGIN, len(windows)]
        for n, w in windows:
            args += [int(n), float(w)]
        args.append(BOOKING_GRACE)
        granted, wait, state = self._acquire(keys=keys, args=args)
        state = state.decode() if isinstance(state, bytes) else state
        return Decision(bool(int(granted)), max(float(wait), 0.0), state)

    def open_rooms(self, key: str, windows: Windows) -> int | None:
        """How many more requests of ``key`` can go now or book a room (None: no limit)."""
        if not windows:
            return None
        horizon = min(int(n) for n, _ in windows)
        return int(self._open(keys=[f"{self.prefix}:{key}:booked"], args=[BOOKING_GRACE, horizon]))

    def has_booking(self, key: str, token: str) -> bool:
        return self.redis.zscore(f"{self.prefix}:{key}:booked", token) is not None

    def pause(self, key: str, seconds: float) -> float:
        """Let nobody send on ``key`` for ``seconds`` (after a 429). Returns the pause in force."""
        return float(self._pause(keys=[f"{self.prefix}:{key}:pause"], args=[max(seconds, 0.0)]))

    def paused_for(self, key: str) -> float:
        return float(self._paused(keys=[f"{self.prefix}:{key}:pause"]))

    def used(self, key: str, windows: Windows) -> list[int]:
        """How many requests each window of ``key`` holds now (read-only; the console's "use")."""
        seconds, micros = self.redis.time()
        now = seconds + micros / 1e6
        return [int(self.redis.zcount(f"{self.prefix}:{key}:log:{n}/{w:g}", now - w, "+inf")) for n, w in windows]


def limit_key(connector: str, account: str, bucket: str) -> str:
    return f"{connector}:{account}:{bucket}"


def describe(windows: Windows) -> str:
    """``((5, 1.0),)`` -> ``5/1s``; several windows joined by ``+``."""
    return "+".join(f"{n}/{w:g}s" for n, w in windows)
