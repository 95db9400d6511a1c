"""What every connector is: inbound verification and normalization, outbound actions.

A connector package is split the same way every time:
``verify.py`` (pure check of the raw request), ``normalize.py`` (payload -> canonical events,
driven by ``mappings/<name>.yaml``), ``client.py`` (outbound calls and the actions offered) and
``__init__.py`` (the Connector subclass tying them together).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from marshmallow import Schema

from hub.errors import PayloadError

if TYPE_CHECKING:
    from hub.config import Setting, Settings
    from hub.events import CanonicalEvent

    from .http import ApiClient, Outcome


@dataclass
class InboundRequest:
    """A webhook request as received. ``headers`` keys are lower-case."""

    method: str
    url: str  # the URL the provider called (rebuilt from HUB_PUBLIC_URL when set)
    headers: Mapping[str, str]
    body: bytes
    token: str | None = None  # optional trailing path segment (/webhooks/<name>/<token>)
    query: Mapping[str, str] = field(default_factory=dict)

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
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from exc


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


@dataclass
class ActionContext:
    """What an action needs besides its parameters."""

    key: str  # the planned action's unique key: the idempotency key sent to the provider
    action_id: int | None = None
    subscriber: dict[str, Any] = field(default_factory=dict)


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
    #: bucket -> (requests, per seconds): the vendor's published limit, shared by every worker
    rate_limits: ClassVar[dict[str, tuple[int, float]]] = {}

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

    def normalize(self, delivery: RawDelivery) -> list["CanonicalEvent"]:
        """Canonical events for a stored delivery; raise PayloadError when it cannot be read."""
        raise NotImplementedError

    # -- outbound --------------------------------------------------------------------------
    def dry_run(self, settings: "Settings") -> bool:
        return not self.outbound_settings or any(not settings[n] for n in self.outbound_settings)

    def client(self, settings: "Settings") -> "ApiClient":
        raise NotImplementedError(f"{self.name} has no outbound client")
