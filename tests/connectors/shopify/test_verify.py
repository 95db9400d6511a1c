"""Shopify webhook verification: the shared contract (both header flavours), the providers.md
vector, and the compliance topics' 401."""

from __future__ import annotations

import json
from typing import Any, Sequence

import pytest

from connectors.shopify import verify
from hub.kernel.errors import VerificationError
from hub.store import Delivery
from tests.conftest import FIXTURES
from tests.connectors.contract import Signed, WebhookContract
from tests.helpers import count

SHOPIFY = FIXTURES / "shopify"


def shopify_headers(body: bytes, secret: str, topic: str = "customers/create", *, webhook_id: str = "wh-1",
                    event_id: str | None = None, prefix: str = "X-Shopify-") -> dict[str, str]:
    headers = {f"{prefix}Hmac-Sha256": verify.sign(body, secret), f"{prefix}Topic": topic,
               f"{prefix}Shop-Domain": "tea-house.myshopify.com", f"{prefix}API-Version": "2025-07",
               f"{prefix}Webhook-Id": webhook_id, f"{prefix}Triggered-At": "2026-01-02T15:15:00Z"}
    if event_id:
        headers[f"{prefix}Event-Id"] = event_id
    return headers


class TestShopifyWebhookContract(WebhookContract):
    connector = "shopify"
    secrets = ("shpss_current", "shpss_rotated_out")
    wrong_secret = "shpss_wrong"
    required_headers = ("X-Shopify-Hmac-Sha256",)
    prefix = "X-Shopify-"

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_SHOPIFY_WEBHOOK_SECRET": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed(shopify_headers(body, secret, prefix=self.prefix))

    def sample_body(self) -> bytes:
        return (SHOPIFY / "customers.create.json").read_bytes()


class TestShopifyEventsFlavourContract(TestShopifyWebhookContract):
    """The developer-preview "Events" delivery: the same HMAC in unprefixed shopify-* headers."""

    prefix = "shopify-"
    required_headers = ("shopify-Hmac-Sha256",)


def test_providers_md_vector_7() -> None:
    assert verify.sign(b'{"id":1}', "hush") == "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="
    verify.verify(b'{"id":1}', {"x-shopify-hmac-sha256": "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="}, ["hush"])


def test_digest_of_another_body_or_secret_is_refused() -> None:
    good = verify.sign(b'{"id":1}', "hush")
    with pytest.raises(VerificationError, match="HUB_SHOPIFY_WEBHOOK_SECRET") as caught:
        verify.verify(b'{"id":2}', {"x-shopify-hmac-sha256": good}, ["hush"])
    assert "hush" not in str(caught.value)  # the secret never reaches a log line
    with pytest.raises(VerificationError):
        verify.verify(b'{"id":1}', {"x-shopify-hmac-sha256": good}, ["other"])
    with pytest.raises(VerificationError):  # hex of the right HMAC is not the base64 Shopify sends
        import hashlib
        import hmac
        verify.verify(b'{"id":1}', {"x-shopify-hmac-sha256": hmac.new(b"hush", b'{"id":1}', hashlib.sha256)
                                    .hexdigest()}, ["hush"])


@pytest.mark.parametrize("topic, fixture", [("customers/data_request", "customers.data_request.json"),
                                            ("customers/redact", "customers.redact.json"),
                                            ("shop/redact", "shop.redact.json")])
def test_compliance_topics_with_a_bad_hmac_get_401(make_hub: Any, topic: str, fixture: str) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_SHOPIFY_WEBHOOK_SECRET="shpss_current")
    body = (SHOPIFY / fixture).read_bytes()
    client = create_app(hub).test_client()
    forged = shopify_headers(body, "shpss_attacker", topic)
    assert client.post("/webhooks/shopify", data=body, headers=forged).status_code == 401
    assert count(hub, Delivery) == 0
    genuine = shopify_headers(body, "shpss_current", topic)
    assert client.post("/webhooks/shopify", data=body, headers=genuine).status_code == 200


def test_dedup_key_is_the_webhook_id_in_either_flavour(make_hub: Any) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_SHOPIFY_WEBHOOK_SECRET="s3cret")
    client = create_app(hub).test_client()
    body = json.dumps({"id": 1}).encode()
    first = client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, "s3cret", webhook_id="A"))
    again = client.post("/webhooks/shopify", data=body,
                        headers=shopify_headers(body, "s3cret", webhook_id="A", prefix="shopify-"))
    other = client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, "s3cret", webhook_id="B"))
    assert [first.status_code, again.status_code, other.status_code] == [200, 200, 200]
    assert again.get_json().get("duplicate") is True and other.get_json().get("duplicate") is None
    assert sorted(d.dedup_key for d in _deliveries(hub)) == ["A", "B"]


def _deliveries(hub: Any) -> list[Delivery]:
    from tests.helpers import rows

    return rows(hub, Delivery)
