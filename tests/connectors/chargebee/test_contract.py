"""Chargebee HTTP Basic auth against the shared webhook contract (tests are in WebhookContract)."""

from __future__ import annotations

from typing import Any, Sequence

from connectors.chargebee import verify
from tests.conftest import FIXTURES
from tests.connectors.contract import Signed, WebhookContract


class TestChargebeeWebhookContract(WebhookContract):
    connector = "chargebee"
    secrets = (("cbuser", "new:pass:word"), ("cbuser-old", "old-pass"))  # a password may contain ':'
    wrong_secret = ("cbuser", "guess")
    signs_body = False  # Basic auth does not cover the body: nothing to tamper with

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_CHARGEBEE_WEBHOOK_USERNAME": ",".join(u for u, _ in secrets),
                "HUB_CHARGEBEE_WEBHOOK_PASSWORD": ",".join(p for _, p in secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed({"Authorization": verify.header(*secret)})

    def sample_body(self) -> bytes:
        return (FIXTURES / "chargebee" / "payment_failed.json").read_bytes()

    def test_answer_is_exactly_200(self, make_hub: Any) -> None:
        # Chargebee treats anything but 200 (even 201/202) as a failure and retries
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        assert self.post(hub, body, self.signed(body)).status_code == 200
        assert self.post(hub, body, self.signed(body)).status_code == 200  # the duplicate too

    def test_user_name_of_one_pair_with_password_of_another_is_refused(self, make_hub: Any) -> None:
        hub = self.hub_for(make_hub, self.secrets)
        body = self.sample_body()
        crossed = (self.secrets[0][0], self.secrets[1][1])
        self.assert_refused(hub, self.post(hub, body, self.signed(body, crossed)))


def test_sign_request_is_accepted_by_verify() -> None:
    # what `hub post chargebee` sends must pass our own check (first configured pair)
    from connectors import get
    from connectors.base import InboundRequest
    from hub.config import load_settings

    settings = load_settings(environ={"HUB_CHARGEBEE_WEBHOOK_USERNAME": "cb,old",
                                      "HUB_CHARGEBEE_WEBHOOK_PASSWORD": "p:w,old-pw"})
    chargebee = get("chargebee")
    url, headers = chargebee.sign_request(b"{}", settings, "http://hub/webhooks/chargebee")
    assert url == "http://hub/webhooks/chargebee"
    assert headers["Authorization"] == verify.header("cb", "p:w")
    chargebee.verify(InboundRequest("POST", url, {k.lower(): v for k, v in headers.items()}, b"{}"), settings)
