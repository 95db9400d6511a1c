"""The webhook contract every inbound connector must honour, as a pytest base class.

A connector's test module points the suite at its scheme and gets every check below:

    from tests.connectors.contract import Signed, WebhookContract

    class TestStripeWebhookContract(WebhookContract):
        connector = "stripe"
        secrets = ("whsec_new", "whsec_old")          # current credential, then the one being rotated out
        wrong_secret = "whsec_wrong"
        timestamp_tolerance = 300                      # only if the scheme signs a timestamp

        def settings(self, secrets):                   # HUB_* settings that enable the endpoint
            return {"HUB_STRIPE_WEBHOOK_SECRET": ",".join(secrets)}

        def sign(self, body, secret, timestamp, url):  # what the provider would send
            return Signed({"Stripe-Signature": stripe_header(body, secret, timestamp)})

        def sample_body(self):                         # a valid payload for this provider
            return b'{"id": "evt_1", ...}'

Interface (everything else has a default):

- ``connector``: the registry name; requests go to ``POST /webhooks/<connector>[/<token>]``.
- ``secrets``: two credentials of whatever shape the scheme needs (a string, a (user, password)
  pair, ...): ``secrets[0]`` is current, ``secrets[1]`` the one still accepted during a rotation.
- ``wrong_secret``: a credential of the same shape that must be refused.
- ``settings(secrets)``: the settings enabling the endpoint with those credentials (several, in order).
- ``sign(body, secret, timestamp, url)``: a ``Signed`` (headers, optional URL token) as the provider
  would send ``body`` at ``timestamp`` (Unix seconds, float) to ``url`` (the full URL called).
- ``sample_body()``: raw bytes of a valid payload.
- ``content_type``: the Content-Type posted (``application/json``).
- ``signs_body``: False when the scheme does not cover the body (HTTP Basic, URL token), which skips
  the tampered-body check.
- ``timestamp_tolerance``: seconds of allowed skew when the scheme signs a timestamp; None skips the
  stale/future checks. Both directions are checked.
- ``required_headers``: headers whose absence must be refused; default: every header ``sign`` sets.
- ``tamper(body)``: a changed body for the tampered check (default: one extra trailing space, which
  a verifier that re-serializes JSON would wrongly accept).

Hooks for a connector's own tests: ``self.post(hub, body, signed)`` and ``self.hub_for(make_hub, ...)``.
The checks use the shared ``make_hub`` fixture (real PostgreSQL + Redis, tables emptied per test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import pytest

from hub.runtime import Hub
from hub.store import Delivery
from tests.helpers import count

BASE_URL = "http://localhost"


@dataclass
class Signed:
    """What a provider adds to a request to authenticate it."""

    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None  # trailing URL segment: /webhooks/<connector>/<token>


class WebhookContract:
    """Base class (not collected itself: its name does not start with ``Test``)."""

    connector: ClassVar[str]
    secrets: ClassVar[tuple[Any, Any]]
    wrong_secret: ClassVar[Any]
    content_type: ClassVar[str] = "application/json"
    signs_body: ClassVar[bool] = True
    timestamp_tolerance: ClassVar[int | None] = None
    required_headers: ClassVar[tuple[str, ...] | None] = None

    # -- what a connector's test module provides --------------------------------------------
    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        raise NotImplementedError

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        raise NotImplementedError

    def sample_body(self) -> bytes:
        raise NotImplementedError

    def tamper(self, body: bytes) -> bytes:
        return body + b" "

    # -- helpers ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return f"/webhooks/{self.connector}"

    def url(self, token: str | None = None) -> str:
        return BASE_URL + self.path + (f"/{token}" if token else "")

    def hub_for(self, make_hub: Callable[..., Hub], secrets: Sequence[Any] | None = None) -> Hub:
        """A hub with this connector enabled for ``secrets`` (default: the current one only)."""
        return make_hub(**self.settings(list(secrets) if secrets is not None else [self.secrets[0]]))

    def signed(self, body: bytes, secret: Any | None = None, timestamp: float | None = None) -> Signed:
        secret = self.secrets[0] if secret is None else secret
        ts = time.time() if timestamp is None else timestamp
        first = self.sign(body, secret, ts, self.url())
        if first.token is None:
            return first
        return self.sign(body, secret, ts, self.url(first.token))  # schemes that sign the URL see the token

    def post(self, hub: Hub, body: bytes, signed: Signed, *, token: str | None = "",
             drop: Sequence[str] = ()) -> Any:
        """POST ``body`` with ``signed``'s headers (minus ``drop``); ``token=None`` omits the URL token."""
        from hub.web import create_app

        headers = {"Content-Type": self.content_type, **signed.headers}
        dropped = {d.lower() for d in drop}
        headers = {k: v for k, v in headers.items() if k.lower() not in dropped}
        use_token = signed.token if token == "" else token
        path = self.path + (f"/{use_token}" if use_token else "")
        return create_app(hub).test_client().post(path, data=body, headers=headers)

    def assert_refused(self, hub: Hub, answer: Any) -> None:
        assert answer.status_code == 401, answer.get_data(as_text=True)
        assert answer.get_json() == {"error": "unauthorized"}  # no detail for the caller
        assert count(hub, Delivery) == 0

    # -- the contract ------------------------------------------------------------------------
    def test_valid_request_is_stored(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        answer = self.post(hub, body, self.signed(body))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert count(hub, Delivery) == 1

    def test_tampered_body_is_refused(self, make_hub: Callable[..., Hub]) -> None:
        if not self.signs_body:
            pytest.skip(f"{self.connector}'s scheme does not cover the body")
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        self.assert_refused(hub, self.post(hub, self.tamper(body), self.signed(body)))

    def test_wrong_secret_is_refused(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        self.assert_refused(hub, self.post(hub, body, self.signed(body, self.wrong_secret)))

    def test_missing_authentication_is_refused(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        signed = self.signed(body)
        required = self.required_headers if self.required_headers is not None else tuple(signed.headers)
        assert required or signed.token, "the scheme must authenticate with a header or a URL token"
        for name in required:
            self.assert_refused(hub, self.post(hub, body, signed, drop=[name]))
        if signed.token:
            self.assert_refused(hub, self.post(hub, body, signed, token=None))
        self.assert_refused(hub, self.post(hub, body, Signed(), token=None))

    def test_stale_timestamp_is_refused(self, make_hub: Callable[..., Hub]) -> None:
        if self.timestamp_tolerance is None:
            pytest.skip(f"{self.connector}'s scheme signs no timestamp")
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        stale = time.time() - self.timestamp_tolerance - 60
        self.assert_refused(hub, self.post(hub, body, self.signed(body, timestamp=stale)))

    def test_future_timestamp_is_refused(self, make_hub: Callable[..., Hub]) -> None:
        if self.timestamp_tolerance is None:
            pytest.skip(f"{self.connector}'s scheme signs no timestamp")
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        future = time.time() + self.timestamp_tolerance + 60
        self.assert_refused(hub, self.post(hub, body, self.signed(body, timestamp=future)))

    def test_skew_within_tolerance_is_accepted(self, make_hub: Callable[..., Hub]) -> None:
        if self.timestamp_tolerance is None:
            pytest.skip(f"{self.connector}'s scheme signs no timestamp")
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        skewed = time.time() - self.timestamp_tolerance + 30
        assert self.post(hub, body, self.signed(body, timestamp=skewed)).status_code == 200

    def test_rotated_secret_is_accepted(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub, self.secrets)
        body = self.sample_body()
        assert self.post(hub, body, self.signed(body, self.secrets[1])).status_code == 200
        assert self.post(hub, body, self.signed(body, self.secrets[0])).status_code == 200
        assert count(hub, Delivery) == 1  # the same delivery signed twice is still one delivery

    def test_old_secret_is_refused_after_rotation(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub, [self.secrets[0]])
        body = self.sample_body()
        self.assert_refused(hub, self.post(hub, body, self.signed(body, self.secrets[1])))

    def test_duplicate_delivery_is_acknowledged_once(self, make_hub: Callable[..., Hub]) -> None:
        hub = self.hub_for(make_hub)
        body = self.sample_body()
        signed = self.signed(body)
        first = self.post(hub, body, signed)
        second = self.post(hub, body, signed)
        assert (first.status_code, second.status_code) == (200, 200)
        assert second.get_json().get("duplicate") is True
        assert count(hub, Delivery) == 1

    def test_unconfigured_endpoint_names_the_setting(self, make_hub: Callable[..., Hub]) -> None:
        names = list(self.settings([self.secrets[0]]))
        hub = make_hub(**dict.fromkeys(names))  # None removes the setting
        body = self.sample_body()
        answer = self.post(hub, body, self.signed(body))
        assert answer.status_code == 404
        assert any(name in answer.get_json()["message"] for name in names)
        assert count(hub, Delivery) == 0


__all__ = ["BASE_URL", "Signed", "WebhookContract"]
