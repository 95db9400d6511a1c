"""The console as an operator uses it, in headless Chromium: sign in, find a subscriber, read why an
action was sent, replay a failed delivery, read the KPI chart, and every page free of console errors,
usable at phone width and by keyboard. Each page is photographed (``make screenshots``)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from selenium.webdriver.common.keys import Keys

from hub.cli import cli
from tests.console.conftest import DESKTOP, PHONE
from tests.helpers import drain

PAGES = {
    "overview": "/?refresh=0",
    "deliveries": "/deliveries",
    "events": "/events",
    "actions": "/actions",
    "subscribers": "/subscribers",
    "rules": "/rules",
    "segments": "/segments",
    "kpis": "/kpis?from=2025-01-01&to=2025-12-31&interval=month",
    "connectors": "/connectors",
}


def test_signing_in_with_the_admin_token_opens_the_console_and_a_wrong_token_does_not(console):
    console.get("/deliveries")
    assert console.driver.current_url.startswith(console.url + "/login")
    console.sign_in("not-the-token")
    assert "not the admin token" in console.find("#token-error").text
    console.sign_in()
    assert console.find("h1").text == "Overview"
    cookie = console.driver.get_cookie("hub_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_finding_a_subscriber_by_email_opens_their_profile(console):
    console.sign_in()
    console.get("/subscribers")
    console.find("#q").send_keys("ALICE@example.com")
    console.follow(console.find("form[role=search] button"))
    assert console.find("#profile-email").text == "alice@example.com"
    subscriptions = console.find_all("main table tbody tr")[0].text
    assert "sub_A" in subscriptions and "12.00 USD" in subscriptions


def test_an_actions_explanation_names_its_rule_and_the_event_that_caused_it(console):
    console.sign_in()
    console.get("/actions?rule=payment-failed-notify")
    console.follow(console.find("main table tbody tr td a"))
    explanation = console.find("#explanation").text
    assert "payment-failed-notify" in explanation and "rules/dunning.yaml" in explanation
    assert "payment.failed" in explanation
    attempts = console.find_all(".attempt")
    assert attempts and "dry_run" in attempts[0].text


def test_replaying_a_failed_delivery_gets_it_processed(console):
    console.sign_in()
    console.get("/deliveries?status=failed")
    console.follow(console.find(f"a[href='/deliveries/{console.seeded['failed_delivery']}']"))
    assert "failed" in console.find("#delivery-status").text
    console.follow(console.find("#replay"))
    assert "Replayed 1 failed delivery" in console.find(".flash").text
    drain(console.hub)  # the worker's turn
    console.driver.refresh()
    assert "processed" in console.find("#delivery-status").text
    assert "subscription.created" in console.find("main ul.plain").text


def test_the_kpi_chart_shows_the_figures_hub_metrics_prints_for_the_same_range(console):
    result = CliRunner().invoke(cli, ["metrics", "--from", "2025-01-01", "--to", "2025-12-31", "--json"])
    assert result.exit_code == 0, result.output
    periods = json.loads(result.output)["periods"]
    console.sign_in()
    console.get(PAGES["kpis"])
    bars = {(r.get_attribute("data-period"), r.get_attribute("data-kind")): int(r.get_attribute("data-value"))
            for r in console.find_all("#movements-chart rect[data-kind]")}
    expected = {(p["start"], kind): value for p in periods for kind, value in p["movements"].items()
                if kind != "net" and value}
    assert bars == expected and len(bars) >= 5
    points = {c.get_attribute("data-period"): int(c.get_attribute("data-value"))
              for c in console.find_all("#mrr-chart circle")}
    assert points == {p["start"]: p["mrr"] for p in periods}


def test_every_page_loads_without_console_errors_fits_a_phone_and_is_photographed(console, screenshots):
    console.sign_in()
    console.console_errors()  # start from an empty log
    console.get("/actions?rule=payment-failed-notify")
    action = console.find("main table tbody tr td a").get_attribute("href")
    console.get("/subscribers?q=alice@example.com")
    profile = console.driver.current_url
    pages = {**PAGES, "action": action.removeprefix(console.url), "subscriber": profile.removeprefix(console.url),
             "delivery": f"/deliveries/{console.seeded['failed_delivery']}"}
    for name, path in pages.items():
        for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
            console.driver.set_window_size(*size)
            console.get(path)
            assert console.find("h1").text, name
            assert console.console_errors() == [], name
            overflow = console.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} scrolls sideways at {size[0]} px"
            if name == "kpis" and suffix == "":  # the movements chart is the picture worth showing
                console.driver.execute_script("document.getElementById('h-mov').scrollIntoView()")
            if suffix == "" or name in ("overview", "subscriber", "kpis"):
                console.driver.save_screenshot(str(screenshots / f"{name}{suffix}.png"))


def test_the_keyboard_reaches_the_skip_link_first_and_it_jumps_to_the_content(console):
    console.sign_in()
    console.get("/actions")
    console.find("body").send_keys(Keys.TAB)
    focused = console.driver.switch_to.active_element
    assert focused.text == "Skip to content"
    focused.send_keys(Keys.ENTER)  # an in-page link: no navigation to wait for
    assert console.driver.switch_to.active_element.get_attribute("id") == "main"
