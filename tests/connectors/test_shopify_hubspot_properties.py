"""Property tests for the Shopify and HubSpot inbound paths: arbitrary bodies and header mutations
never give a 500 and are never accepted without a valid signature; any verified body either
normalizes (identically, twice) or is refused as a PayloadError, never crashes the normalizer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import connectors
from connectors.base import RawDelivery
from connectors.hubspot import verify as hubspot_verify
from connectors.shopify import verify as shopify_verify
from hub.kernel.errors import PayloadError
from hub.kernel.mapping import table

SECRET = "prop-secret"
URL = "http://localhost/webhooks/hubspot"
PROFILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

header_names = st.sampled_from([
    "X-Shopify-Hmac-Sha256", "shopify-hmac-sha256", "X-Shopify-Topic", "X-Shopify-Webhook-Id",
    "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", "X-HubSpot-Signature", "X-HubSpot-Signature-Version",
])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)


def _signed(connector: str, body: bytes) -> dict[str, str]:
    if connector == "shopify":
        return {"X-Shopify-Hmac-Sha256": shopify_verify.sign(body, SECRET), "X-Shopify-Topic": "orders/create",
                "X-Shopify-Webhook-Id": "w"}
    ts = int(time.time() * 1000)
    return {"X-HubSpot-Signature-v3": hubspot_verify.sign_v3(SECRET, "POST", URL, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts)}


@PROFILE
@given(connector=st.sampled_from(["shopify", "hubspot"]), body=st.binary(max_size=300),
       mutations=st.dictionaries(header_names, header_values | st.none(), min_size=1, max_size=3),
       flip_body=st.booleans())
def test_forged_requests_get_401_and_never_500(make_hub: Any, connector: str, body: bytes,
                                               mutations: dict[str, str | None], flip_body: bool) -> None:
    from hub.web import create_app

    hub = _hub(make_hub)
    headers = _signed(connector, body)
    tampered = dict(headers)
    for name, value in mutations.items():
        if value is None:
            tampered.pop(name, None)
        else:
            tampered[name] = value
    sent = body + b"x" if flip_body else body
    answer = create_app(hub).test_client().post(f"/webhooks/{connector}", data=sent, headers=tampered)
    assert answer.status_code in (200, 401)
    if answer.status_code == 200:
        assert _genuine(connector, sent, tampered)


def _genuine(connector: str, body: bytes, headers: dict[str, str]) -> bool:
    """An oracle written apart from the hub's verifiers (URL has no escapes, so no decoding applies)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if connector == "shopify":
        digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
        return digest in (lower.get("x-shopify-hmac-sha256"), lower.get("shopify-hmac-sha256"))
    if "x-hubspot-signature-v3" in lower:
        ts = lower.get("x-hubspot-request-timestamp") or ""
        message = b"POST" + URL.encode() + body + ts.encode()
        digest = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
        return ts.isdigit() and abs(time.time() * 1000 - int(ts)) <= 300_000 and \
            digest == lower["x-hubspot-signature-v3"]
    return lower.get("x-hubspot-signature-version") == "v1" and \
        hashlib.sha256(SECRET.encode() + body).hexdigest() == lower.get("x-hubspot-signature")


_HUBS: dict[int, Any] = {}


def _hub(make_hub: Any) -> Any:
    # one hub per test function (hypothesis calls the body many times with the same fixture)
    key = id(make_hub)
    if key not in _HUBS:
        _HUBS.clear()
        _HUBS[key] = make_hub(HUB_SHOPIFY_WEBHOOK_SECRET=SECRET, HUB_HUBSPOT_CLIENT_SECRET=SECRET)
    return _HUBS[key]


@settings(max_examples=100, deadline=None)
@example(topic="customer.email_marketing_consent", payload=None, shaped={"updated_at": 67768036191676796})
@given(topic=st.sampled_from(sorted(table("shopify").events) + ["app/uninstalled"]),
       payload=json_values, shaped=st.dictionaries(st.sampled_from([
           "id", "customer_id", "customer", "email", "currency", "total_price", "line_items", "updated_at",
           "created_at", "status", "revision_id", "billing_policy", "email_marketing_consent",
           "sms_marketing_consent", "subscription_contract_id", "shop_id"]), json_values, max_size=8))
def test_shopify_normalize_never_crashes(topic: str, payload: Any, shaped: dict[str, Any]) -> None:
    for body in (payload, shaped):
        delivery = RawDelivery(1, "shopify", {"x-shopify-topic": topic, "x-shopify-webhook-id": "w"},
                               json.dumps(body).encode(), datetime(2026, 1, 1, tzinfo=timezone.utc))
        _normalizes_or_refuses(connectors.get("shopify"), delivery)


@settings(max_examples=100, deadline=None)
@example(elements=[{"subscriptionType": "contact.creation", "objectId": 1, "occurredAt": 10**22}])
@given(elements=st.lists(st.fixed_dictionaries({}, optional={
    "subscriptionType": st.sampled_from(["contact.creation", "contact.propertyChange", "contact.merge",
                                         "contact.deletion", "contact.privacyDeletion", "x.y"]) | json_values,
    "objectId": json_values, "eventId": json_values, "portalId": json_values, "occurredAt": json_values
    | st.integers(0, 4_000_000_000_000), "propertyName": st.sampled_from(["email", "hs_email_optout",
                                                                          "hs_email_optout_1", "x"]) | json_values,
    "propertyValue": json_values, "primaryObjectId": json_values, "mergedObjectIds": json_values}), max_size=4)
    | json_values)
def test_hubspot_normalize_never_crashes(elements: Any) -> None:
    delivery = RawDelivery(1, "hubspot", {}, json.dumps(elements).encode(), datetime(2026, 1, 1, tzinfo=timezone.utc))
    _normalizes_or_refuses(connectors.get("hubspot"), delivery)


def _normalizes_or_refuses(connector: Any, delivery: RawDelivery) -> None:
    try:
        first = [e.to_dict() for e in connector.normalize(delivery)]
    except PayloadError:
        return
    assert first == [e.to_dict() for e in connector.normalize(delivery)]
    json.dumps(first)  # storable as JSON
