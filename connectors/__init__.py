"""The explicit connector registry: adding a connector is one import and one line here."""

from __future__ import annotations

from .activecampaign import connector as activecampaign
from .base import Connector
from .chargebee import connector as chargebee
from .hubspot import connector as hubspot
from .klaviyo import connector as klaviyo
from .shopify import connector as shopify
from .stripe import connector as stripe
from .webhook import connector as webhook


def _registry(*connectors: Connector) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for c in connectors:
        if c.name in out:
            raise RuntimeError(f"two connectors are named {c.name!r}")
        out[c.name] = c
    return out


REGISTRY: dict[str, Connector] = _registry(
    stripe,
    chargebee,
    shopify,
    klaviyo,
    hubspot,
    activecampaign,
    webhook,
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
