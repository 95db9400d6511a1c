"""Hostile input at the connector and receiver level (issue 13): odd bytes and numbers in
authentication headers, chunked bodies past the cap, bounded parsing of verified bodies."""

from __future__ import annotations

import io

import pytest

from connectors.klaviyo import verify as klaviyo
from connectors.payload import MAX_DEPTH, loads
from hub.kernel.errors import PayloadError, VerificationError
from hub.store import Delivery
from tests.helpers import count, stripe_headers

NOW = 1_780_000_000.0


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e400", "-5", "0", "1e20"])
def test_klaviyo_refuses_a_correctly_signed_non_finite_or_absurd_timestamp(stamp: str) -> None:
    body = b'{"data": []}'
    with pytest.raises(VerificationError, match="plausible|tolerance"):
        klaviyo.verify_system(body, klaviyo.sign(body, "s3cret", stamp), stamp, ["s3cret"], now=NOW)


def test_klaviyo_signature_with_non_ascii_bytes_is_refused_not_a_type_error() -> None:
    with pytest.raises(VerificationError):
        klaviyo.verify_system(b"{}", "\xe9" * 64, "2026-01-01T00:00:00Z", ["s3cret"], now=NOW)
    with pytest.raises(VerificationError):
        klaviyo.verify_flow("caf\xe9", ["s3cret"])


def test_verified_bodies_are_parsed_with_bounded_depth_and_finite_numbers() -> None:
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    for body in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), b"[" * 100_000, b"[NaN]", b'{"a": 1e999}'):
        with pytest.raises(PayloadError):
            loads(body)


def _chunked_post(client, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    # no Content-Length and a server that terminates the stream: what a chunked request looks like to Flask
    return client.post("/webhooks/stripe", input_stream=io.BytesIO(body), headers=headers,
                       environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})


def test_a_chunked_body_over_the_cap_is_refused_not_cut_to_the_cap(make_hub) -> None:
    from hub.web import create_app

    hub = make_hub(HUB_STRIPE_WEBHOOK_SECRET="whsec_test_secret", HUB_MAX_BODY_BYTES="1000")
    client = create_app(hub).test_client()
    big = b'{"id": "evt_big", "pad": "' + b"x" * 2000 + b'"}'
    # signed over the first 1000 bytes: what the hub would have stored had it cut the body there
    answer = _chunked_post(client, big, stripe_headers(big[:1000]))
    assert answer.status_code == 413
    assert count(hub, Delivery) == 0
    small = b'{"id": "evt_small", "type": "customer.created"}'
    assert _chunked_post(client, small, stripe_headers(small)).status_code == 200
