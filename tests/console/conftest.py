"""The console in a real browser: Debian's headless Chromium driven by selenium, against the hub's
Flask app served by a real HTTP server on 127.0.0.1, with a small scripted history in the store."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from werkzeug.serving import make_server

from hub.store import Delivery, utcnow
from hub.store.models import DeliveryStatus
from tests import services
from tests.conftest import FIXTURES
from tests.helpers import drain, recent, stripe_headers
from tests.subscribers.support import ev, feed, sub, who

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DESKTOP, PHONE = (1280, 800), (390, 844)
TOKEN = "admin-test-token"


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when missing (like the database servers)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        services._apt_install("chromium", "chromium-driver")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``HUB_SCREENSHOTS`` (``make screenshots``: docs/screenshots) or a temporary folder."""
    folder = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Console:
    def __init__(self, hub: Any, url: str, driver: Any):
        self.hub, self.url, self.driver = hub, url, driver

    def get(self, path: str) -> None:
        self.driver.get(self.url + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def follow(self, element: Any) -> None:
        """Click a link or button and wait until the next page has replaced this one."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        from selenium.common.exceptions import WebDriverException

        element.click()
        gone = expected_conditions.staleness_of(element)

        def replaced(driver: Any) -> bool:
            try:
                return gone(driver)
            except WebDriverException:  # Chromium may answer "node does not belong to the document" mid-swap
                return True

        WebDriverWait(self.driver, 30).until(replaced)

    def sign_in(self, token: str = TOKEN) -> None:
        self.get("/login")
        self.find("#token").send_keys(token)
        self.follow(self.find("#login button[type=submit]"))

    def console_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


def seed(hub: Any, client: Any) -> dict[str, Any]:
    """A payment failure received as a real Stripe webhook, a year of subscriptions fed as canonical
    events (for the KPIs), and a delivery that failed to process (e.g. before a normalizer fix)."""
    body = recent((FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes(), "created")  # live, not history
    assert client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).status_code == 200
    a, b = who("stripe", "cus_A", "alice@example.com", first_name="Alice"), who("stripe", "cus_B", "bob@example.com")
    feed(hub,
         ev("subscription.created", "2025-01-05T09:00:00Z", subscriber=a, subscription=sub("sub_A", "active", 1000)),
         ev("subscription.created", "2025-02-10T09:00:00Z", subscriber=b, subscription=sub("sub_B", "active", 3000)),
         ev("subscription.changed", "2025-04-10T09:00:00Z", subscriber=a, subscription=sub("sub_A", "active", 1500)),
         ev("subscription.changed", "2025-06-15T09:00:00Z", subscriber=b, subscription=sub("sub_B", "active", 2000)),
         ev("subscription.cancelled", "2025-09-03T09:00:00Z", subscriber=a, subscription=sub("sub_A", "cancelled", 0)),
         ev("subscription.reactivated", "2025-10-05T09:00:00Z", subscriber=a,
            subscription=sub("sub_A", "active", 1200)))
    drain(hub)
    created = json.loads((FIXTURES / "stripe" / "customer.subscription.created.json").read_bytes())
    with hub.store.session() as s:
        failed = Delivery(connector="stripe", dedup_key=created["id"], headers={"content-type": "application/json"},
                          body=json.dumps(created).encode(), received_at=utcnow(), status=DeliveryStatus.FAILED,
                          error="PayloadError: simulated normalizer bug (fixed since)", attempts=1, enqueued=1)
        s.add(failed)
        s.flush()
        failed_id = failed.id
    return {"failed_delivery": failed_id}


@pytest.fixture
def console(make_hub: Any, browser: Any) -> Iterator[Console]:
    from hub.web import create_app

    # klaviyo in dry run: actions are recorded with their request, nothing leaves the machine
    hub = make_hub(HUB_KLAVIYO_API_KEY=None, HUB_REPORTING_CURRENCY="USD")
    app = create_app(hub)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser.delete_all_cookies()
    browser.set_window_size(*DESKTOP)
    c = Console(hub, f"http://127.0.0.1:{server.server_port}", browser)
    c.seeded = seed(hub, app.test_client())  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        server.shutdown()
        thread.join(10)
