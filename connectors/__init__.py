"""The explicit connector registry: adding a connector is one import and one line here."""

from __future__ import annotations

from .base import Connector
from .klaviyo import connector as klaviyo
from .stripe import connector as stripe


def _registry(*connectors: Connector) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for c in connectors:
        if c.name in out:
            raise RuntimeError(f"two connectors are named {c.name!r}")
        out[c.name] = c
    return out


REGISTRY: dict[str, Connector] = _registry(
    stripe,
    klaviyo,
)


def get(name: str) -> Connector | None:
    return REGISTRY.get(name)


def action_spec(qualified: str):  # type: ignore[no-untyped-def]
    """``"klaviyo.track_event"`` -> (connector, ActionSpec), or None when unknown."""
    connector_name, _, action = qualified.partition(".")
    connector = REGISTRY.get(connector_name)
    if connector is None or action not in connector.actions:
        return None
    return connector, connector.actions[action]
