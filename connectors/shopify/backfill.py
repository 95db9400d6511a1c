"""Shopify history for ``hub backfill shopify`` (connectors/sync.py says how), through the Admin
GraphQL API: customers, subscription contracts, subscription billing attempts and orders, in that
order (a contract's customer is known before its contract, an attempt's contract before it).

Each list is a connection read oldest first (``sortKey: CREATED_AT``), ``first: N`` nodes a page and
the next page ``after: pageInfo.endCursor`` while ``pageInfo.hasNextPage``; the window is the search
syntax ``created_at:>='…' created_at:<'…'`` in ``query`` (Admin GraphQL "Paginating results" and
"Search syntax"). Every node becomes the webhook Shopify sends for the same fact (REST-style body,
numeric ids, lower-case enums, the topic and the fact's time in the ``X-Shopify-*`` headers), so the
webhooks' normalizer reads it; the mapping keys these facts on the object (mappings/shopify.yaml),
so the webhook of the same fact gives the same canonical event.

Throttling is by query cost, not request count: every answer carries ``extensions.cost`` (the
query's ``requestedQueryCost`` and the bucket's ``throttleStatus``: ``currentlyAvailable`` points,
``restoreRate`` points a second). When the bucket holds less than the next page will ask for, the
page tells the reader to wait (``Page.wait``) the time the bucket needs to refill: the same wait the
client computes for a ``THROTTLED`` answer, taken before instead of after. Orders are read without
``read_all_orders`` only for the last 60 days (Shopify's rule).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterable

from connectors.http import ApiClient
from connectors.shopify.client import ShopifyClient
from connectors.sync import Page, Phase, Record, Source
from hub.kernel.values import parse_time, rfc3339

PAGE_SIZE = 100
#: orders carry line items: a smaller page keeps the query under Shopify's 1,000-point single-query cap
ORDERS_PAGE_SIZE = 20
LINE_ITEMS = 10

CUSTOMERS = """query backfillCustomers($first: Int!, $after: String, $query: String) {
  customers(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id firstName lastName state verifiedEmail tags createdAt updatedAt
      defaultEmailAddress { emailAddress marketingState marketingOptInLevel marketingUpdatedAt }
      defaultPhoneNumber { phoneNumber marketingState marketingOptInLevel marketingUpdatedAt marketingCollectedFrom }
      defaultAddress { countryCodeV2 }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
CONTRACTS = """query backfillContracts($first: Int!, $after: String, $query: String) {
  subscriptionContracts(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id status createdAt updatedAt currencyCode revisionId
      customer { id }
      originOrder { id }
      billingPolicy { interval intervalCount minCycles maxCycles }
      deliveryPolicy { interval intervalCount }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
ATTEMPTS = """query backfillBillingAttempts($first: Int!, $after: String, $query: String) {
  subscriptionBillingAttempts(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id idempotencyKey ready createdAt completedAt
      order { id }
      processingError { code message }
      subscriptionContract { id }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
ORDERS = """query backfillOrders($first: Int!, $after: String, $query: String, $lines: Int!) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    nodes {
      id name email createdAt processedAt cancelledAt updatedAt currencyCode test tags
      displayFinancialStatus displayFulfillmentStatus
      totalPriceSet { shopMoney { amount } }
      subtotalPriceSet { shopMoney { amount } }
      totalTaxSet { shopMoney { amount } }
      totalDiscountsSet { shopMoney { amount } }
      totalOutstandingSet { shopMoney { amount } }
      customer { id firstName lastName defaultEmailAddress { emailAddress } }
      lineItems(first: $lines) {
        nodes { id sku title quantity variant { id } originalUnitPriceSet { shopMoney { amount } } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""


def window(start: datetime, end: datetime) -> str:
    """The search-syntax filter for records created in [start, end)."""
    return f"created_at:>='{rfc3339(start)}' created_at:<'{rfc3339(end)}'"


def numeric(gid: Any) -> int | None:
    """``gid://shopify/Customer/7062102134962`` -> 7062102134962, the id the webhooks carry."""
    if not gid:
        return None
    tail = str(gid).rsplit("/", 1)[-1].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _amount(money_set: Any) -> Any:
    return ((money_set or {}).get("shopMoney") or {}).get("amount")


def throttle_wait(extensions: Any, next_cost: float | None = None) -> float:
    """Seconds until the cost bucket holds what the next page will ask for (0: it does already)."""
    cost = (extensions or {}).get("cost") if isinstance(extensions, dict) else None
    if not isinstance(cost, dict):
        return 0.0
    status = cost.get("throttleStatus") if isinstance(cost.get("throttleStatus"), dict) else {}
    try:
        wanted = float(next_cost if next_cost is not None else cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable"))
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return 0.0
    if available >= wanted or rate <= 0:
        return 0.0
    return (wanted - available + 1) / rate  # + 1: Shopify reports the points available as a whole number


def record(topic: str, body: dict[str, Any], object_id: Any, at: str) -> Record:
    """A node as the webhook of ``topic``; keyed ``bf:<topic>:<object id>`` like the other backfills."""
    key = f"bf:{topic}:{object_id}"
    return Record(key, body, parse_time(at), headers={"X-Shopify-Topic": topic, "X-Shopify-Triggered-At": at})


def _connection(name: str, query: str, page_size: Callable[[], int], facts: Callable[[dict[str, Any]], Iterable[Record]],
                extra: dict[str, Any] | None = None) -> Callable[[ApiClient, datetime, datetime, Any], Page]:
    def fetch(client: ApiClient, start: datetime, end: datetime, cursor: Any) -> Page:
        assert isinstance(client, ShopifyClient), "a Shopify backfill reads through the Shopify client"
        variables = {"first": page_size(), "after": cursor, "query": window(start, end), **(extra or {})}
        body = client.graphql(query, variables, whole=True).data or {}
        connection = ((body.get("data") or {}).get(name)) or {}
        nodes = [n for n in connection.get("nodes") or [] if isinstance(n, dict) and n.get("id")]
        info = connection.get("pageInfo") or {}
        nxt = info.get("endCursor") if info.get("hasNextPage") else None
        reached = parse_time(nodes[-1]["createdAt"]) if nodes and nodes[-1].get("createdAt") else None
        records = [r for node in nodes for r in facts(node) if r.time < end]
        return Page(records, nxt, reached, wait=throttle_wait(body.get("extensions")) if nxt else 0.0)
    return fetch


def customer_body(node: dict[str, Any]) -> dict[str, Any]:
    email = node.get("defaultEmailAddress") or {}
    phone = node.get("defaultPhoneNumber") or {}
    address = node.get("defaultAddress") or {}
    body: dict[str, Any] = {
        "id": numeric(node["id"]), "admin_graphql_api_id": node["id"], "email": email.get("emailAddress"),
        "first_name": node.get("firstName"), "last_name": node.get("lastName"),
        "phone": phone.get("phoneNumber"), "state": _lower(node.get("state")),
        "verified_email": node.get("verifiedEmail"), "tags": ", ".join(node.get("tags") or []),
        "created_at": node.get("createdAt"), "updated_at": node.get("updatedAt"),
        "email_marketing_consent": None, "sms_marketing_consent": None,
        "default_address": {"country_code": address.get("countryCodeV2")} if address else None,
    }
    if email.get("marketingState"):
        body["email_marketing_consent"] = {"state": _lower(email["marketingState"]),
                                           "opt_in_level": _lower(email.get("marketingOptInLevel")),
                                           "consent_updated_at": email.get("marketingUpdatedAt")}
    if phone.get("marketingState"):
        body["sms_marketing_consent"] = {"state": _lower(phone["marketingState"]),
                                         "opt_in_level": _lower(phone.get("marketingOptInLevel")),
                                         "consent_updated_at": phone.get("marketingUpdatedAt"),
                                         "consent_collected_from": phone.get("marketingCollectedFrom")}
    return body


def customer_facts(node: dict[str, Any]) -> Iterable[Record]:
    # customers/create carries the consent too: normalize.py turns it into the consent events
    yield record("customers/create", customer_body(node), numeric(node["id"]), node["createdAt"])


def contract_body(node: dict[str, Any]) -> dict[str, Any]:
    billing, delivery = node.get("billingPolicy") or {}, node.get("deliveryPolicy") or {}
    customer, origin = (node.get("customer") or {}).get("id"), (node.get("originOrder") or {}).get("id")
    return {
        "admin_graphql_api_id": node["id"], "id": numeric(node["id"]),
        "billing_policy": {"interval": _lower(billing.get("interval")), "interval_count": billing.get("intervalCount"),
                           "min_cycles": billing.get("minCycles"), "max_cycles": billing.get("maxCycles")},
        "currency_code": node.get("currencyCode"), "customer_id": numeric(customer),
        "admin_graphql_api_customer_id": customer,
        "delivery_policy": {"interval": _lower(delivery.get("interval")),
                            "interval_count": delivery.get("intervalCount")},
        "status": _lower(node.get("status")), "admin_graphql_api_origin_order_id": origin,
        "origin_order_id": numeric(origin),
        "revision_id": str(node["revisionId"]) if node.get("revisionId") is not None else None,
    }


#: a contract's end as the topic that announced it
_ENDED = {"CANCELLED": "subscription_contracts/cancel", "EXPIRED": "subscription_contracts/expire"}


def contract_facts(node: dict[str, Any]) -> Iterable[Record]:
    body = contract_body(node)
    if body["customer_id"] is None:
        return
    yield record("subscription_contracts/create", body, body["id"], node["createdAt"])
    ended = _ENDED.get(str(node.get("status") or "").upper())
    if ended and node.get("updatedAt"):
        yield record(ended, body, body["id"], node["updatedAt"])


def attempt_facts(node: dict[str, Any]) -> Iterable[Record]:
    """One outcome per finished attempt: an order means success, a processing error failure; an
    attempt still processing (``ready: false``) has no outcome yet."""
    order = (node.get("order") or {}).get("id")
    error = node.get("processingError") or {}
    if not node.get("ready") or not (order or error):
        return
    contract = (node.get("subscriptionContract") or {}).get("id")
    body = {"id": numeric(node["id"]), "admin_graphql_api_id": node["id"],
            "idempotency_key": node.get("idempotencyKey"), "order_id": numeric(order),
            "admin_graphql_api_order_id": order, "subscription_contract_id": numeric(contract),
            "admin_graphql_api_subscription_contract_id": contract, "ready": True,
            "error_message": None if order else error.get("message"),
            "error_code": None if order else _lower(error.get("code"))}
    topic = "subscription_billing_attempts/success" if order else "subscription_billing_attempts/failure"
    yield record(topic, body, body["id"], node.get("completedAt") or node["createdAt"])


#: financial states an order reaches only after being paid (orders/paid fired)
_PAID = {"PAID", "PARTIALLY_REFUNDED", "REFUNDED"}
_FULFILMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}


def order_body(node: dict[str, Any]) -> dict[str, Any]:
    customer = node.get("customer") or {}
    lines = ((node.get("lineItems") or {}).get("nodes")) or []
    return {
        "id": numeric(node["id"]), "admin_graphql_api_id": node["id"], "name": node.get("name"),
        "email": node.get("email"), "created_at": node.get("createdAt"), "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"), "updated_at": node.get("updatedAt"),
        "currency": node.get("currencyCode"), "total_price": _amount(node.get("totalPriceSet")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")), "total_tax": _amount(node.get("totalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountsSet")),
        "total_outstanding": _amount(node.get("totalOutstandingSet")),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": _FULFILMENT.get(str(node.get("displayFulfillmentStatus") or "")),
        "test": node.get("test"), "tags": ", ".join(node.get("tags") or []),
        "customer": {"id": numeric(customer.get("id")), "admin_graphql_api_id": customer.get("id"),
                     "email": (customer.get("defaultEmailAddress") or {}).get("emailAddress"),
                     "first_name": customer.get("firstName"), "last_name": customer.get("lastName")}
        if customer else None,
        "line_items": [{"id": numeric(item.get("id")), "variant_id": numeric((item.get("variant") or {}).get("id")),
                        "sku": item.get("sku"), "title": item.get("title"), "quantity": item.get("quantity"),
                        "price": _amount(item.get("originalUnitPriceSet"))}
                       for item in lines if isinstance(item, dict)],
    }


def order_facts(node: dict[str, Any]) -> Iterable[Record]:
    body = order_body(node)
    yield record("orders/create", body, body["id"], node["createdAt"])
    if str(node.get("displayFinancialStatus") or "").upper() in _PAID:
        # GraphQL lists no paid time on the order; it is processed when paid at checkout
        yield record("orders/paid", body, body["id"], node.get("processedAt") or node["createdAt"])


SOURCE = Source(
    phases=(
        Phase("customers", _connection("customers", CUSTOMERS, lambda: PAGE_SIZE, customer_facts)),
        Phase("subscription contracts",
              _connection("subscriptionContracts", CONTRACTS, lambda: PAGE_SIZE, contract_facts)),
        Phase("billing attempts",
              _connection("subscriptionBillingAttempts", ATTEMPTS, lambda: PAGE_SIZE, attempt_facts)),
        Phase("orders", _connection("orders", ORDERS, lambda: ORDERS_PAGE_SIZE, order_facts, {"lines": LINE_ITEMS})),
    ),
    events_reach=None,  # Shopify's event log is not the webhooks' payloads: the objects are the history
    page_size=PAGE_SIZE,
)
