"""A Shopify subscription billing failure, dunned through the Shopify connector in a running hub:
a billing attempt 3 days later, and still unpaid after the dunning window, the contract paused.
The rules are a merchant's own file shaped like the playbook's dunning rules (the playbook routes
billing actions by provider, see rules/dunning.yaml); requests are checked against the Admin
GraphQL shapes with ``responses``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import responses
from sqlalchemy import select, update

from connectors.shopify.client import API_VERSION
from hub.kernel.values import rfc3339
from hub.store import Action, utcnow
from tests.conftest import FIXTURES
from tests.connectors.shopify.test_verify import shopify_headers
from tests.helpers import drain

GRAPHQL = f"https://tea-shop.myshopify.com/admin/api/{API_VERSION}/graphql.json"
CONTRACT = "gid://shopify/SubscriptionContract/24398905522"
RULES = """\
rules:
  - id: dunning-retry-shopify
    on: [payment.failed]
    when: "subscription.id and event.provider == 'shopify'"
    schedule: {after: event.time, offsets: [3d]}
    cancel_on: [payment.succeeded, subscription.cancelled]
    actions:
      - shopify.retry_payment: {subscription_id: "{{ subscription.id }}"}
  - id: dunning-suspend-shopify
    on: [payment.failed]
    when: "subscription.id and event.provider == 'shopify'"
    schedule: {after: event.time, offsets: [21d]}
    cancel_on: [payment.succeeded, subscription.cancelled]
    actions:
      - shopify.pause_subscription: {subscription_id: "{{ subscription.id }}"}
"""


def _post(client: Any, name: str, topic: str, n: int) -> None:
    body = (FIXTURES / "shopify" / name).read_bytes()
    headers = shopify_headers(body, "shpss", topic, webhook_id=f"W{n}", event_id=f"E{n}")
    headers["X-Shopify-Triggered-At"] = rfc3339(utcnow())  # happening now: the dunning steps lie ahead
    answer = client.post("/webhooks/shopify", data=body, headers=headers)
    assert answer.status_code == 200


def _deliver(hub: Any, rule: str) -> None:
    """Time passes: the rule's step falls due and the workers send it."""
    with hub.store.session() as s:
        s.execute(update(Action).where(Action.rule_id == rule).values(due_at=utcnow() - timedelta(seconds=1)))
    drain(hub)


@responses.activate
def test_a_shopify_billing_failure_is_retried_then_the_contract_paused(make_hub: Any, tmp_path: Path) -> None:
    from hub.web import create_app

    (tmp_path / "dunning.yaml").write_text(RULES)
    hub = make_hub(HUB_RULES_PATH=str(tmp_path), HUB_SHOPIFY_WEBHOOK_SECRET="shpss", HUB_SHOPIFY_SHOP="tea-shop",
                   HUB_SHOPIFY_ACCESS_TOKEN="shpat_token")
    client = create_app(hub).test_client()
    _post(client, "subscription_contracts.create.json", "subscription_contracts/create", 1)
    _post(client, "subscription_billing_attempts.failure.json", "subscription_billing_attempts/failure", 2)
    drain(hub)
    with hub.store.session() as s:
        planned = dict(s.execute(select(Action.rule_id, Action.status)).all())
    assert planned == {"dunning-retry-shopify": "scheduled", "dunning-suspend-shopify": "scheduled"}
    assert len(responses.calls) == 0

    responses.post(GRAPHQL, json={"data": {"subscriptionBillingAttemptCreate": {
        "subscriptionBillingAttempt": {"id": "gid://shopify/SubscriptionBillingAttempt/9"}, "userErrors": []}}})
    _deliver(hub, "dunning-retry-shopify")
    [attempt] = responses.calls
    sent = json.loads(attempt.request.body)
    with hub.store.session() as s:
        key, status = s.execute(select(Action.key, Action.status)
                                .where(Action.rule_id == "dunning-retry-shopify")).one()
    assert status == "done"
    assert sent["variables"] == {"subscriptionContractId": CONTRACT,
                                 "subscriptionBillingAttemptInput": {"idempotencyKey": key}}
    assert attempt.request.headers["X-Shopify-Access-Token"] == "shpat_token"

    # no success arrives: the dunning window ends and the contract is paused
    responses.replace(responses.POST, GRAPHQL, json={"data": {"subscriptionContractPause": {
        "contract": {"id": CONTRACT, "status": "PAUSED"}, "userErrors": []}}})
    _deliver(hub, "dunning-suspend-shopify")
    assert len(responses.calls) == 2
    pause = json.loads(responses.calls[1].request.body)
    assert pause["variables"] == {"subscriptionContractId": CONTRACT}
    assert pause["query"].startswith("mutation subscriptionContractPause(")
    with hub.store.session() as s:
        assert s.execute(select(Action.status).where(Action.rule_id == "dunning-suspend-shopify")).scalar() == "done"
