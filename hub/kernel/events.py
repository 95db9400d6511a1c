"""The canonical subscriber event (CloudEvents 1.0 envelope) and its vocabulary.

Every provider delivery becomes one or more ``CanonicalEvent``. Ids are deterministic: the same
provider event normalized twice yields the same id, so replays collapse on the events table.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, fields, validate

SPECVERSION = "1.0"
_ID_NAMESPACE = uuid.UUID("6f1d8a52-3f5c-4d7e-9a61-2b7c4e1f0a93")


class EventType:
    """Canonical event types. Each constant's comment is its meaning."""

    #: a customer record appeared at a provider
    SUBSCRIBER_CREATED = "subscriber.created"
    #: a customer record changed at a provider
    SUBSCRIBER_UPDATED = "subscriber.updated"
    #: a customer record was deleted at a provider
    SUBSCRIBER_DELETED = "subscriber.deleted"
    #: a privacy erasure request (e.g. Shopify customers/redact)
    SUBSCRIBER_REDACT_REQUESTED = "subscriber.redact_requested"
    #: a privacy data export request (e.g. Shopify customers/data_request)
    SUBSCRIBER_DATA_REQUESTED = "subscriber.data_requested"
    #: a storefront asks to erase everything held for it (Shopify shop/redact, 48 h after uninstall)
    SHOP_REDACT_REQUESTED = "shop.redact_requested"
    #: identities at a provider were merged (e.g. HubSpot contact.merge)
    SUBSCRIBER_MERGED = "subscriber.merged"
    #: marketing consent for a channel became subscribed or unsubscribed
    SUBSCRIBER_CONSENT_CHANGED = "subscriber.consent_changed"
    #: a tag was added to or removed from the person in a messaging tool
    SUBSCRIBER_TAGGED = "subscriber.tagged"
    #: a subscription exists (trialing or active)
    SUBSCRIPTION_CREATED = "subscription.created"
    #: the first paid period began (trial converted, or paid at once)
    SUBSCRIPTION_ACTIVATED = "subscription.activated"
    #: the trial ends soon
    SUBSCRIPTION_TRIAL_ENDING = "subscription.trial_ending"
    #: the provider announced an upcoming renewal
    SUBSCRIPTION_RENEWAL_UPCOMING = "subscription.renewal_upcoming"
    #: a new period began and was billed
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    #: plan, price or quantity changed (upgrade or downgrade, with proration)
    SUBSCRIPTION_CHANGED = "subscription.changed"
    #: collection or service paused
    SUBSCRIPTION_PAUSED = "subscription.paused"
    #: collection or service resumed
    SUBSCRIPTION_RESUMED = "subscription.resumed"
    #: the subscription will end at a known date
    SUBSCRIPTION_CANCELLATION_SCHEDULED = "subscription.cancellation_scheduled"
    #: the subscription ended
    SUBSCRIPTION_CANCELLED = "subscription.cancelled"
    #: a cancelled or scheduled-to-cancel subscription came back
    SUBSCRIPTION_REACTIVATED = "subscription.reactivated"
    #: something else about the subscription changed (dunning status, metadata): state only, no moment
    SUBSCRIPTION_UPDATED = "subscription.updated"
    #: an invoice was issued (or is about to be: invoice reminders)
    INVOICE_CREATED = "invoice.created"
    #: an issued invoice changed (amount, due date), falls due soon or is overdue, or will not be paid
    #: (status ``void`` or ``uncollectible``): the invoice's state, for reminders and their cancellation
    INVOICE_UPDATED = "invoice.updated"
    #: a charge attempt succeeded
    PAYMENT_SUCCEEDED = "payment.succeeded"
    #: a charge attempt failed (attempt number, next retry, decline code)
    PAYMENT_FAILED = "payment.failed"
    #: money went back
    PAYMENT_REFUNDED = "payment.refunded"
    #: a payment succeeded after earlier failures on the same subscription (derived)
    PAYMENT_RECOVERED = "payment.recovered"
    #: a storefront order was placed
    ORDER_PLACED = "order.placed"
    #: a storefront order was paid
    ORDER_PAID = "order.paid"
    #: metered usage against a plan limit
    USAGE_RECORDED = "usage.recorded"
    #: a messaging tool delivered a message
    MESSAGE_DELIVERED = "message.delivered"
    #: a messaging tool reported an open
    MESSAGE_OPENED = "message.opened"
    #: a messaging tool reported a click
    MESSAGE_CLICKED = "message.clicked"
    #: a messaging tool reported a bounce
    MESSAGE_BOUNCED = "message.bounced"
    #: the subscriber entered a segment (derived)
    SEGMENT_ENTERED = "segment.entered"
    #: the subscriber left a segment (derived)
    SEGMENT_EXITED = "segment.exited"
    #: the subscriber's loyalty tier changed (derived)
    TIER_CHANGED = "tier.changed"
    #: MRR moved: new, expansion, contraction, churn, reactivation (derived)
    MRR_CHANGED = "mrr.changed"
    #: an operational or business condition needs someone (hub/alerts.py; data.alert says which)
    ALERT_RAISED = "alert.raised"
    #: a raised alert's condition is back past its clear threshold
    ALERT_RESOLVED = "alert.resolved"
    #: a verified delivery with no mapping yet: stored and listed, never dropped
    PROVIDER_UNMAPPED = "provider.unmapped"


ALL_TYPES: frozenset[str] = frozenset(
    v for k, v in vars(EventType).items() if k.isupper() and isinstance(v, str)
)


def matches(pattern: str, event_type: str) -> bool:
    """Glob match of an event type (``subscription.*``)."""
    return fnmatch.fnmatchcase(event_type, pattern)


def event_id(provider: str, provider_event_id: str, type_: str) -> str:
    """Deterministic id: the same provider event and canonical type always give the same id."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{provider}\x1f{provider_event_id}\x1f{type_}"))


@dataclass
class CanonicalEvent:
    """A CloudEvents 1.0 structured event with the hub's extension attributes."""

    type: str
    time: str
    provider: str
    providereventid: str
    providertype: str
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    id: str = ""
    source: str = ""
    specversion: str = SPECVERSION
    datacontenttype: str = "application/json"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = event_id(self.provider, self.providereventid, self.type)
        if not self.source:
            self.source = f"/connectors/{self.provider}"

    def to_dict(self) -> dict[str, Any]:
        return EventSchema().dump(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "CanonicalEvent":
        return cls(**EventSchema().load(payload))

    def part(self, name: str) -> dict[str, Any]:
        """A typed part of ``data`` (``subscriber``, ``subscription``, ...), or an empty dict."""
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}


class EventSchema(Schema):
    """Wire format of a canonical event (JSON lines, API, ``hub import``)."""

    specversion = fields.String(load_default=SPECVERSION, validate=validate.Equal(SPECVERSION))
    id = fields.String(load_default="")
    source = fields.String(load_default="")
    type = fields.String(required=True)
    time = fields.String(required=True)
    subject = fields.String(allow_none=True, load_default=None)
    datacontenttype = fields.String(load_default="application/json")
    provider = fields.String(required=True)
    providereventid = fields.String(required=True)
    providertype = fields.String(required=True)
    data = fields.Dict(load_default=dict)

    class Meta:
        ordered = True
