"""The explicit connector registry: adding a connector is one import and one line here."""

from __future__ import annotations

from connectors.activecampaign import connector as activecampaign
from connectors.base import Connector, SyncTarget
from connectors.chargebee import connector as chargebee
from connectors.hubspot import connector as hubspot
from connectors.klaviyo import connector as klaviyo
from connectors.shopify import connector as shopify
from connectors.stripe import connector as stripe
from connectors.webhook import connector as webhook
from hub.kernel.settings import Settings


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


def senders() -> list[str]:
    """Connectors that send actions (each has its own deliver queue)."""
    return [name for name, c in REGISTRY.items() if c.actions]


def dry_run_connectors(settings: Settings) -> frozenset[str]:
    """Senders whose actions are recorded but not sent (no API key set)."""
    return frozenset(name for name, c in REGISTRY.items() if c.actions and c.dry_run(settings))


def sync_target(tool: str, kind: str) -> SyncTarget | None:
    """What segment sync does for ``kind`` (list, tag, properties, fields) in ``tool``."""
    connector = REGISTRY.get(tool)
    return next((t for t in connector.sync_targets if t.kind == kind), None) if connector else None


def action_spec(qualified: str):  # type: ignore[no-untyped-def]
    """``"klaviyo.track_event"`` -> (connector, ActionSpec), or None when unknown."""
    connector_name, _, action = qualified.partition(".")
    connector = REGISTRY.get(connector_name)
    if connector is None or action not in connector.actions:
        return None
    return connector, connector.actions[action]


def on_repeat(connector: Connector, action: str):  # type: ignore[no-untyped-def]
    """What a repeat of ``connector.action`` does after a lost answer (its own, else the connector's)."""
    return connector.actions[action].on_repeat or connector.on_repeat


def repeat_table() -> str:
    """The Markdown table of docs/delivery.md: every action that sends, and whether a repeat after a
    timeout can double its effect (generated from the registry; tests/outbound/test_repeat.py checks it)."""
    lines = ["| action | a repeat after a timeout | what keeps it single |", "|---|---|---|"]
    for name, connector in REGISTRY.items():
        for action in connector.actions:
            known = on_repeat(connector, action)
            effect, how = (known.effect, known.how) if known else ("**can double**", "not documented")
            lines.append(f"| `{name}.{action}` | {effect} | {how} |")
    return "\n".join(lines) + "\n"
