"""HubSpot webhook verification: the shared contract for v3 and v1, HubSpot's own test vectors,
the official SDK as an oracle, and the signed URL as the hub rebuilds it (HUB_PUBLIC_URL, query)."""

from __future__ import annotations

import time
from typing import Any, Sequence

import pytest
from hubspot.utils.signature import Signature

from connectors.hubspot import verify
from hub.kernel.errors import VerificationError
from hub.store import Delivery
from tests.conftest import FIXTURES
from tests.connectors.contract import Signed, WebhookContract
from tests.helpers import count

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
V1_DOC_BODY = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
               b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
               b'"changeFlag":"NEW","appId":54321}]')
SDK_BODY = "{'example_field':'example_value'}"


def v3_headers(body: bytes, secret: str, url: str, timestamp_ms: int | None = None,
               method: str = "POST") -> dict[str, str]:
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"X-HubSpot-Signature-v3": verify.sign_v3(secret, method, url, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts)}


def v2_headers(body: bytes, secret: str, url: str) -> dict[str, str]:
    return {"X-HubSpot-Signature": verify.sign_v2(secret, "POST", url, body), "X-HubSpot-Signature-Version": "v2"}


def v1_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"X-HubSpot-Signature": verify.sign_v1(secret, body), "X-HubSpot-Signature-Version": "v1"}


class TestHubSpotV3WebhookContract(WebhookContract):
    connector = "hubspot"
    secrets = ("client-secret-current", "client-secret-previous")
    wrong_secret = "client-secret-wrong"
    timestamp_tolerance = verify.TOLERANCE_MS // 1000

    def settings(self, secrets: Sequence[Any]) -> dict[str, str]:
        return {"HUB_HUBSPOT_CLIENT_SECRET": ",".join(secrets)}

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed(v3_headers(body, secret, url, int(timestamp * 1000)))

    def sample_body(self) -> bytes:
        return (FIXTURES / "hubspot" / "contact.creation.json").read_bytes()


class TestHubSpotV1WebhookContract(TestHubSpotV3WebhookContract):
    """Legacy app webhooks: X-HubSpot-Signature-Version v1 (no timestamp is signed)."""

    timestamp_tolerance = None

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed(v1_headers(body, secret))


class TestHubSpotV2WebhookContract(TestHubSpotV3WebhookContract):
    """X-HubSpot-Signature-Version v2: secret + method + URI + body (no timestamp is signed)."""

    timestamp_tolerance = None

    def sign(self, body: bytes, secret: Any, timestamp: float, url: str) -> Signed:
        return Signed(v2_headers(body, secret, url))

    def sample_body(self) -> bytes:
        return (FIXTURES / "hubspot" / "object.creation.json").read_bytes()


# -- HubSpot's own vectors (providers.md Appendix A) and the SDK as an oracle -------------------
def test_v1_vectors_from_the_docs_and_the_sdk() -> None:
    assert verify.sign_v1(SECRET, V1_DOC_BODY) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert verify.sign_v1(SECRET, SDK_BODY.encode()) == (
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750")
    verify.verify("POST", "https://x.test/webhooks/hubspot", V1_DOC_BODY,
                  {"x-hubspot-signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
                   "x-hubspot-signature-version": "v1"}, [SECRET])


def test_v2_vector_from_the_docs_and_the_sdk() -> None:
    # HubSpot's "v2 request validation" page: GET https://www.example.com/webhook_uri, no body
    url = "https://www.example.com/webhook_uri"
    doc = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    assert verify.sign_v2(SECRET, "GET", url, b"") == doc
    assert verify.verify("GET", url, b"", {"x-hubspot-signature": doc.upper(), "x-hubspot-signature-version": "v2"},
                         [SECRET]) == "v2"
    body = V1_DOC_BODY.decode()
    assert verify.sign_v2(SECRET, "POST", url, V1_DOC_BODY) == Signature.get_signature(
        SECRET, body, "v2", http_uri=url, http_method="POST")
    # the method and the URI are signed: the same signature on another URL is refused
    with pytest.raises(VerificationError, match="v2 signature does not match"):
        verify.verify("POST", url + "?x=1", V1_DOC_BODY, {"x-hubspot-signature": verify.sign_v2(
            SECRET, "POST", url, V1_DOC_BODY), "x-hubspot-signature-version": "v2"}, [SECRET])


def test_v3_vector_5_with_a_frozen_clock() -> None:
    url, ts = "https://www.example.com/webhook_uri", 1693657560000
    expected = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    assert verify.sign_v3(SECRET, "POST", url, SDK_BODY.encode(), ts) == expected
    assert Signature.get_signature(SECRET, SDK_BODY, "v3", url, "POST", str(ts)) == expected
    headers = {"x-hubspot-signature-v3": expected, "x-hubspot-request-timestamp": str(ts)}
    assert verify.verify("POST", url, SDK_BODY.encode(), headers, [SECRET], now_ms=ts + 299_000) == "v3"
    with pytest.raises(VerificationError, match="5-minute window"):
        verify.verify("POST", url, SDK_BODY.encode(), headers, [SECRET], now_ms=ts + 301_000)


@pytest.mark.parametrize("body", [b"[]", V1_DOC_BODY, "[{\"propertyValue\":\"Zo\u00eb \u2603\"}]".encode()])
@pytest.mark.parametrize("url", ["https://hub.example.com/webhooks/hubspot",
                                 "https://hub.example.com/webhooks/hubspot?portal=62515&tag=a%20b"])
def test_our_v3_and_v1_agree_with_the_sdk(body: bytes, url: str) -> None:
    ts = str(int(time.time() * 1000))
    ours = verify.sign_v3(SECRET, "POST", url, body, ts)
    assert Signature.is_valid(ours, SECRET, body.decode(), url, "POST", "v3", ts)
    sdk = Signature.get_signature(SECRET, body.decode(), "v3", url, "POST", ts)
    assert verify.verify("POST", url, body, {"x-hubspot-signature-v3": sdk, "x-hubspot-request-timestamp": ts},
                         [SECRET]) == "v3"
    assert verify.sign_v1(SECRET, body) == Signature.get_signature(SECRET, body.decode(), "v1")


def test_v3_uri_decodes_only_the_escapes_hubspot_decodes() -> None:
    # HubSpot's guide: decode %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B, leave the rest encoded
    called = "https://h.test/webhooks/hubspot?next=%2Fa%3Ab&x=%28y%29&name=Zo%C3%AB%20K"
    assert verify.signed_uri(called) == "https://h.test/webhooks/hubspot?next=/a:b&x=(y)&name=Zo%C3%AB%20K"
    body, ts = b"[]", int(time.time() * 1000)
    hubspot_signed = Signature.get_signature(SECRET, "[]", "v3", verify.signed_uri(called), "POST", str(ts))
    headers = {"x-hubspot-signature-v3": hubspot_signed, "x-hubspot-request-timestamp": str(ts)}
    assert verify.verify("POST", called, body, headers, [SECRET]) == "v3"


def test_v3_signs_the_method_and_the_url() -> None:
    url, body = "https://h.test/webhooks/hubspot", b"[]"
    headers = {k.lower(): v for k, v in v3_headers(body, SECRET, url).items()}
    verify.verify("POST", url, body, headers, [SECRET])
    for method, other_url in [("PUT", url), ("POST", url + "?x=1"), ("POST", url.replace("https", "http"))]:
        with pytest.raises(VerificationError):
            verify.verify(method, other_url, body, headers, [SECRET])


@pytest.mark.parametrize("headers, reason", [
    ({"x-hubspot-signature": "ab", "x-hubspot-signature-version": "v4"}, "unsupported"),
    ({"x-hubspot-signature": "ab", "x-hubspot-signature-version": "v2"}, "v2 signature does not match"),
    ({"x-hubspot-signature": "ab"}, "unsupported"),
    ({"x-hubspot-signature-v3": "abc="}, "Timestamp"),
    ({"x-hubspot-signature-v3": "abc=", "x-hubspot-request-timestamp": "1.7e12"}, "Timestamp"),
    ({"x-hubspot-signature-v3": "abc=", "x-hubspot-request-timestamp": "\u00b2"}, "Timestamp"),
    ({}, "missing"),
])
def test_malformed_signature_headers_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        verify.verify("POST", "https://h.test/", b"[]", headers, [SECRET])


def test_a_v3_request_is_not_rescued_by_a_v1_signature() -> None:
    body = b"[]"
    headers = {**{k.lower(): v for k, v in v1_headers(body, SECRET).items()},
               "x-hubspot-signature-v3": "forged=", "x-hubspot-request-timestamp": str(int(time.time() * 1000))}
    with pytest.raises(VerificationError, match="v3"):
        verify.verify("POST", "https://h.test/", body, headers, [SECRET])


# -- the URL the receive endpoint hands to the verifier ------------------------------------------
def _post(hub: Any, path: str, body: bytes, headers: dict[str, str], **kw: Any) -> Any:
    from hub.web import create_app

    return create_app(hub).test_client().post(path, data=body, headers={"Content-Type": "application/json",
                                                                        **headers}, **kw)


@pytest.mark.parametrize("query", ["", "?portal=62515", "?b=2&a=1", "?q=a%20b&r=%2Fx%3A",
                                   "?name=Zo%C3%AB&tag=%22vip%22&k=%5B1%5D"])
def test_v3_url_from_the_request_keeps_the_query_as_sent(make_hub: Any, query: str) -> None:
    hub = make_hub(HUB_HUBSPOT_CLIENT_SECRET="cs")
    body = (FIXTURES / "hubspot" / "contact.creation.json").read_bytes()
    url = "http://localhost/webhooks/hubspot" + query
    answer = _post(hub, "/webhooks/hubspot" + query, body, v3_headers(body, "cs", url))
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_v3_url_is_rebuilt_from_hub_public_url_behind_a_proxy(make_hub: Any) -> None:
    hub = make_hub(HUB_HUBSPOT_CLIENT_SECRET="cs", HUB_PUBLIC_URL="https://hooks.example.com/")
    body = (FIXTURES / "hubspot" / "contact.creation.json").read_bytes()
    public = "https://hooks.example.com/webhooks/hubspot?portal=62515&n=Zo%C3%AB"
    # the proxy forwards plain HTTP to an internal host; HubSpot signed the public https URL
    signed_public = v3_headers(body, "cs", public)
    assert _post(hub, "/webhooks/hubspot?portal=62515&n=Zo%C3%AB", body, signed_public,
                 base_url="http://10.0.0.7:8000").status_code == 200
    signed_internal = v3_headers(body, "cs", "http://10.0.0.7:8000/webhooks/hubspot?portal=62515&n=Zo%C3%AB")
    assert _post(hub, "/webhooks/hubspot?portal=62515&n=Zo%C3%AB", body, signed_internal,
                 base_url="http://10.0.0.7:8000").status_code == 401
    assert count(hub, Delivery) == 1
