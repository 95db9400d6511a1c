"""What every connector is: inbound verification and normalization, outbound actions.

A connector package is split the same way every time:
``verify.py`` (pure check of the raw request), ``normalize.py`` (payload -> canonical events,
driven by ``mappings/<name>.yaml``), ``client.py`` (outbound calls and the actions offered) and
``__init__.py`` (the Connector subclass tying them together).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from marshmallow import Schema

from hub.kernel.errors import PayloadError

if TYPE_CHECKING:
    from connectors.http import ApiClient, Outcome
    from hub.kernel.events import CanonicalEvent
    from hub.kernel.settings import Setting, Settings


class InboundRequest:
    """A webhook request as received. ``headers`` keys are lower-case.

    ``url`` is the URL the provider called (rebuilt from HUB_PUBLIC_URL when set); it may be given
    as a function, so only schemes that sign the URL (HubSpot) pay for building it.
    """

    def __init__(self, method: str, url: str | Callable[[], str], headers: Mapping[str, str], body: bytes,
                 token: str | None = None):
        self.method = method
        self._url = url
        self.headers = headers
        self.body = body
        self.token = token  # optional trailing path segment (/webhooks/<name>/<token>)

    @property
    def url(self) -> str:
        if callable(self._url):
            self._url = self._url()
        return self._url

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class RawDelivery:
    """A stored delivery handed to ``normalize``."""

    id: int | None
    connector: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime

    def json(self) -> Any:
        from connectors.payload import loads

        return loads(self.body)


@dataclass
class ItemOutcome:
    """One item's result inside a batch call (``error`` None means it succeeded)."""

    ok: bool
    error: Exception | None = None
    response: Any = None


@dataclass(frozen=True)
class BatchSpec:
    """How pending actions of one kind for one destination are coalesced into a bulk call.

    ``group`` returns a key: actions with the same key may share a call (e.g. the same list id).
    ``run`` sends one call for all items and returns one ItemOutcome per item, in order; it raises
    an ActionError when the whole call failed.
    """

    max_items: int
    run: Callable[["ApiClient", list[tuple[dict[str, Any], "ActionContext"]]], tuple["Outcome", list[ItemOutcome]]]
    group: Callable[[dict[str, Any]], str] = lambda params: ""


@dataclass(frozen=True)
class OnRepeat:
    """What a second call of an action does when the first one's answer was lost (a timeout, a
    connection reset, a killed worker): the first may or may not have reached the destination, so the
    outbox sends it again. ``effect`` is the verdict (``single``, or ``single`` with its condition)
    and ``how`` what makes it so; docs/delivery.md lists both for every action (tests check it)."""

    effect: str
    how: str


#: the common case: an action that sets state (a field, a membership) leaves the same state twice
SETS_STATE = OnRepeat("single", "it sets state: a repeat leaves the same state")


@dataclass(frozen=True)
class ActionSpec:
    """An outbound action a rule can call as ``<connector>.<name>``."""

    name: str
    schema: type[Schema]
    run: Callable[["ApiClient", dict[str, Any], "ActionContext"], "Outcome"]
    description: str = ""
    #: the rate-limit bucket this action's calls count against (see Connector.rate_limits)
    bucket: str = "default"
    #: set when the provider has a bulk endpoint for this action
    batch: BatchSpec | None = None
    #: a repeat after a lost answer (default: the connector's ``on_repeat``)
    on_repeat: OnRepeat | None = None


@dataclass(frozen=True)
class SyncTarget:
    """One kind of segment-sync target a tool offers (``sync: {<tool>: {<kind>: ref}}`` in segments.yaml).

    Membership kinds (a list, a tag) name the actions for entering and leaving and the parameter that
    takes the reference; value kinds name the action that sets values: with ``param`` one action per
    value (``{param: name, "value": v}``), without it one action for all (``{"properties": {...}}``).
    """

    kind: str
    add: str = ""
    remove: str = ""
    set: str = ""
    param: str = ""


@dataclass
class ActionContext:
    """What an action needs besides its parameters."""

    key: str  # the planned action's unique key: the idempotency key sent to the provider
    action_id: int | None = None
    subscriber: dict[str, Any] = field(default_factory=dict)
    #: which try this is; above 1 an earlier try may have reached the destination unanswered
    attempt: int = 1
    #: when the first try began (retries only): what a destination that keeps no key can be asked about
    tried_since: datetime | None = None


class Connector:
    """Base class. Subclasses set the class attributes and override what they support."""

    name: ClassVar[str]
    settings: ClassVar[tuple["Setting", ...]] = ()
    #: settings that must all be set for the webhook endpoint to be enabled
    inbound_settings: ClassVar[tuple[str, ...]] = ()
    #: settings that must all be set to send for real (otherwise actions run dry)
    outbound_settings: ClassVar[tuple[str, ...]] = ()
    #: request headers kept with the stored delivery (lower-case)
    kept_headers: ClassVar[tuple[str, ...]] = ()
    actions: ClassVar[dict[str, ActionSpec]] = {}
    #: what segment sync may target in this tool
    sync_targets: ClassVar[tuple[SyncTarget, ...]] = ()
    #: bucket -> (requests, per seconds): the vendor's published limit, shared by every worker.
    #: A bucket may also list several windows, ``((10, 1.0), (150, 60.0))``: all must have room.
    #: Operators override it with ``HUB_<NAME>_RATE_LIMIT`` (see ``rate_limits_for``).
    rate_limits: ClassVar[dict[str, Any]] = {}
    #: the circuit breaker: consecutive retriable failures before the destination's circuit opens,
    #: and how long it stays open before one probe is let through (hub/circuit.py)
    circuit_failures: ClassVar[int] = 5
    circuit_cooldown: ClassVar[float] = 30.0
    #: path of a harmless authenticated GET used by ``hub connectors test`` (see ``check``)
    check_path: ClassVar[str | None] = None
    #: what a repeat of its actions does after a lost answer, unless an ActionSpec says otherwise
    on_repeat: ClassVar[OnRepeat | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every connector that sends gets an ``HUB_<NAME>_RATE_LIMIT`` override setting, unless it
        # declares its own (HubSpot declares an int "per 10 s" and overrides rate_limits_for).
        super().__init_subclass__(**kwargs)
        name = getattr(cls, "name", None)
        if not name or not cls.__dict__.get("outbound_settings"):
            return
        var = f"HUB_{name.upper()}_RATE_LIMIT"
        if any(s.name == var for s in cls.settings):
            return
        from hub.kernel.settings import Setting

        cls.settings = tuple(cls.settings) + (Setting(
            var, "Override the vendor rate limit: `5/1s`, or per bucket `events=350/1s,lists=10/1s+150/60s` "
            "(unset: the published limits).", None, group=name),)

    # -- inbound ---------------------------------------------------------------------------
    @property
    def receives(self) -> bool:
        return bool(self.inbound_settings)

    def missing_inbound_settings(self, settings: "Settings") -> list[str]:
        return [name for name in self.inbound_settings if not settings[name]]

    def verify(self, request: InboundRequest, settings: "Settings") -> None:
        """Raise VerificationError unless the request is authentic."""
        raise NotImplementedError

    def dedup_key(self, request: InboundRequest) -> str:
        """The provider's idempotency key for this delivery; by default a hash of the body."""
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    def dedup_key_from_id(self, request: InboundRequest, field: str = "id") -> str:
        """The body's top-level ``field`` (an event id), or the body hash when it has none."""
        from connectors.payload import loads

        try:
            value = loads(request.body).get(field)
        except (AttributeError, PayloadError):
            value = None
        return str(value) if value else Connector.dedup_key(self, request)

    def sign_request(self, body: bytes, settings: "Settings", url: str) -> tuple[str, dict[str, str]]:
        """Sign ``body`` as the provider would with the configured secret: returns the URL to post to
        and the headers (used by ``hub post`` to send a first webhook, and by tests)."""
        raise NotImplementedError(f"{self.name} cannot sign test requests")

    def normalize(self, delivery: RawDelivery) -> list["CanonicalEvent"]:
        """Canonical events for a stored delivery; raise PayloadError when it cannot be read."""
        raise NotImplementedError

    # -- outbound --------------------------------------------------------------------------
    def dry_run(self, settings: "Settings") -> bool:
        return not self.outbound_settings or any(not settings[n] for n in self.outbound_settings)

    def client(self, settings: "Settings") -> "ApiClient":
        raise NotImplementedError(f"{self.name} has no outbound client")

    def members(self, client: "ApiClient", target: str) -> set[str] | None:
        """Case-folded e-mails the tool holds for a membership target (``klaviyo:list:<id>``, see
        hub/segments/sync.py), read for ``hub segments reconcile``; None when unknown (dry run, or a
        target the connector cannot read)."""
        return None

    def rate_limits_for(self, settings: "Settings") -> dict[str, tuple[tuple[int, float], ...]]:
        """bucket -> windows in force: ``rate_limits`` with ``HUB_<NAME>_RATE_LIMIT`` applied.

        The override is ``N/Ws`` for every bucket, or ``bucket=N/Ws`` entries (comma-separated;
        ``+`` joins windows). Entries without a bucket apply to buckets not named.
        """
        limits = {bucket: windows(value) for bucket, value in self.rate_limits.items()}
        override = settings[f"HUB_{self.name.upper()}_RATE_LIMIT"]
        if isinstance(override, str) and override.strip():
            named, default = parse_rate_limit(override)
            for bucket in set(limits) | {"default"}:
                if bucket in named:
                    limits[bucket] = named[bucket]
                elif default is not None:
                    limits[bucket] = default
            limits.update({b: w for b, w in named.items()})
        return limits

    def rate_limit_account(self, settings: "Settings") -> str:
        """Who the vendor counts requests against: by default a digest of the outbound credentials
        (never the credentials themselves), so hubs sharing an account share its limit."""
        values = "\n".join(str(settings[n] or "") for n in self.outbound_settings)
        return hashlib.sha256(values.encode()).hexdigest()[:16]

    def check(self, client: "ApiClient") -> "Outcome":
        """A harmless authenticated call for ``hub connectors test``: ``GET check_path`` by default.

        Raise CredentialsError (401/403) when the credentials are refused; connectors without a
        ``check_path`` override this or say they cannot be checked.
        """
        from hub.kernel.errors import PermanentError

        if not self.check_path:
            raise PermanentError(f"{self.name} has no credentials check")
        return client.request("GET", self.check_path)


_WINDOW = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def windows(value: Any) -> tuple[tuple[int, float], ...]:
    """``(5, 1.0)``, ``((10, 1.0), (150, 60.0))`` or ``"10/1s+150/1m"`` -> ((requests, seconds), ...)."""
    if isinstance(value, str):
        out = []
        for part in value.split("+"):
            match = _WINDOW.match(part)
            if not match:
                raise ValueError(f"rate limit {part.strip()!r}: expected N/<seconds>s, e.g. 5/1s or 150/1m")
            amount, unit = float(match.group(2) or 1), _UNIT[match.group(3) or "s"]
            out.append((int(match.group(1)), amount * unit))
        return tuple(out)
    if value and isinstance(value[0], (tuple, list)):
        return tuple((int(n), float(w)) for n, w in value)
    return ((int(value[0]), float(value[1])),)


def parse_rate_limit(text: str) -> tuple[dict[str, tuple[tuple[int, float], ...]], tuple[tuple[int, float], ...] | None]:
    """``"5/1s"`` or ``"events=350/1s,lists=10/1s+150/1m"`` -> (per bucket, for every other bucket)."""
    named: dict[str, tuple[tuple[int, float], ...]] = {}
    default = None
    for entry in (e for e in text.split(",") if e.strip()):
        bucket, sep, spec = entry.partition("=")
        if sep:
            named[bucket.strip()] = windows(spec)
        else:
            default = windows(bucket)
    return named, default
