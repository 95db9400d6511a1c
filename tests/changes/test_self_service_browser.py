"""The self-service page as a subscriber uses it, in headless Chromium against the hub served on
127.0.0.1 and a local HTTP server standing in for Stripe: open the link, read the preview, confirm a
pause, and find it applied at the provider; an expired and a tampered link are refused."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

import pytest
from werkzeug.serving import make_server

from hub.changes import links
from hub.web import create_app
from tests.changes.support import subscription
from tests.console.conftest import browser  # noqa: F401  (the session's headless Chromium)
from tests.helpers import drain
from tests.mockapi import MockApi

AUTH = {"Authorization": "Bearer admin-test-token"}
SECRET = "self-service-browser-secret"


@pytest.fixture
def site(make_hub, browser):  # noqa: F811
    stripe = MockApi(lambda seen, n: (200, {"Content-Type": "application/json"},
                                      b'{"id": "sub_1", "object": "subscription"}', 0.0))
    hub = make_hub(HUB_SELF_SERVICE_SECRET=SECRET, HUB_STRIPE_API_KEY="sk_test_browser",
                   HUB_STRIPE_API_URL=stripe.url)
    subscription(hub, "stripe", "sub_1", plan="price_basic", amount=3000)
    app = create_app(hub)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser.delete_all_cookies()
    try:
        yield hub, app.test_client(), f"http://127.0.0.1:{server.server_port}", browser, stripe
    finally:
        server.shutdown()
        thread.join(10)
        stripe.close()


def _find(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _follow(driver, element):
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    element.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(element))


def test_a_subscriber_previews_and_confirms_a_pause_that_reaches_stripe(site):
    hub, client, base, driver, stripe = site
    made = client.post("/api/subscriptions/sub_1/self-service-links", json={"allowed": ["pause", "cancel"]},
                       headers=AUTH).json
    path = made["url"].split("localhost", 1)[1]
    driver.get(base + path)
    assert _find(driver, "#plan").text == "price_basic" and "30.00 USD" in _find(driver, "#charge").text
    _find(driver, "input[name=change][value=pause]").click()
    _follow(driver, _find(driver, "#review"))
    assert _find(driver, "#preview-change").text == "pause"
    assert _find(driver, "#preview-charge").text == "30.00 → 0.00 USD"
    _follow(driver, _find(driver, "#confirm"))
    done = _find(driver, "#done").text
    assert "pause is recorded" in done
    change_id = int(done.rsplit("reference ", 1)[1].rstrip(")."))
    drain(hub)  # the deliver worker's turn
    shown = client.get(f"/api/subscriptions/sub_1/changes/{change_id}", headers=AUTH).json
    assert shown["status"] == "done" and shown["action"] == "stripe.pause_subscription"
    [call] = stripe.requests
    assert (call.method, call.path) == ("POST", "/v1/subscriptions/sub_1")
    assert parse_qs(call.body.decode()) == {"pause_collection[behavior]": ["keep_as_draft"]}
    driver.get(base + path)  # the link worked once
    assert _find(driver, "#refused").text == "this link was already used"


def test_an_expired_and_a_tampered_link_are_refused(site):
    hub, client, base, driver, stripe = site
    expired = links.make(SECRET, None, "stripe:sub_1", ["pause"], 60, now=time.time() - 120)
    driver.get(f"{base}/self-service/{expired}")
    assert _find(driver, "#refused").text == "this link has expired; ask for a new one"
    fresh = links.make(SECRET, None, "stripe:sub_1", ["pause"], 600)
    payload, mac = fresh.split(".")
    altered = payload[:5] + ("B" if payload[5] == "A" else "A") + payload[6:]  # the claims, not the signature
    driver.get(f"{base}/self-service/{altered}.{mac}")
    assert _find(driver, "#refused").text == "this link is not valid"
    assert stripe.requests == []
