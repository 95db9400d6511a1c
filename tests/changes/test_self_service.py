"""Self-service links: issued by the API, opened by the subscriber, usable once, refused when
expired or tampered with; confirming a pause plans it."""

from __future__ import annotations

import re
import time

import pytest

from hub.changes import links
from hub.store import Action
from hub.web import create_app
from tests.changes.support import subscription
from tests.helpers import rows

AUTH = {"Authorization": "Bearer admin-test-token"}
SECRET = "self-service-test-secret"


@pytest.fixture
def web(make_hub):
    hub = make_hub(HUB_SELF_SERVICE_SECRET=SECRET)
    subscription(hub, "stripe", "sub_1", plan="price_basic", amount=3000)
    return hub, create_app(hub).test_client()


def _link(client, **body) -> str:
    answer = client.post("/api/subscriptions/sub_1/self-service-links", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.json
    return answer.json["url"].split("localhost", 1)[-1]


def test_a_link_shows_the_subscription_and_confirms_a_pause_once(web):
    hub, client = web
    path = _link(client, allowed=["pause", "cancel"])
    page = client.get(path)
    assert page.status_code == 200 and "price_basic" in page.text and "30.00 USD" in page.text
    assert re.findall(r'value="(\w+)"', page.text)[:2] == ["cancel", "pause"]
    done = client.post(path, data={"change": "pause", "effective": "now"})
    assert done.status_code == 200 and 'id="done"' in done.text
    [action] = rows(hub, Action)
    assert (action.connector, action.name, action.params) == ("stripe", "pause_subscription",
                                                              {"subscription_id": "sub_1"})
    assert client.get(path).status_code == 403  # used
    assert client.post(path, data={"change": "pause"}).status_code == 403
    assert len(rows(hub, Action)) == 1


def test_a_change_the_link_does_not_allow_is_refused(web):
    hub, client = web
    path = _link(client, allowed=["pause"])
    assert client.post(path, data={"change": "cancel"}).status_code == 403
    assert rows(hub, Action) == []


def test_tampered_and_expired_links_are_refused(web):
    hub, client = web
    path = _link(client)
    token = path.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    assert client.get(f"/self-service/{payload}x.{mac}").status_code == 403
    old = links.make(SECRET, None, "stripe:sub_1", ["pause"], 60, now=time.time() - 120)
    answer = client.get(f"/self-service/{old}")
    assert answer.status_code == 403 and "this link has expired" in answer.text and "<html" in answer.text
    other = links.make("another-secret", None, "stripe:sub_1", ["pause"], 600)
    assert client.get(f"/self-service/{other}").status_code == 403


def test_without_the_secret_no_link_is_issued(hub, client):
    subscription(hub, "stripe", "sub_1", plan="price_basic", amount=3000)
    answer = client.post("/api/subscriptions/sub_1/self-service-links", json={}, headers=AUTH)
    assert answer.status_code == 409 and "HUB_SELF_SERVICE_SECRET" in answer.json["message"]


def test_reviewing_a_change_shows_its_preview_and_leaves_the_link_usable(web):
    hub, client = web
    path = _link(client, allowed=["cancel"])
    shown = client.post(path, data={"change": "cancel", "effective": "period_end", "step": "review"})
    assert shown.status_code == 200 and 'id="preview"' in shown.text and "30.00 &rarr; 0.00 USD" in shown.text
    assert 'name="step" value="confirm"' in shown.text and rows(hub, Action) == []
    assert client.get(path).status_code == 200  # not used by a review
