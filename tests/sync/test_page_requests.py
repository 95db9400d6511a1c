"""Every page a backfill reads is asked for the way the vendor documents it (``responses``)."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.chargebee import backfill as cb
from connectors.chargebee.client import ChargebeeClient
from connectors.stripe import backfill as st
from connectors.stripe.client import API_VERSION, StripeClient

START = datetime(2026, 8, 1, tzinfo=timezone.utc)
END = datetime(2026, 10, 1, tzinfo=timezone.utc)


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@pytest.fixture
def stripe_client() -> StripeClient:
    return StripeClient("https://api.stripe.test", {"Authorization": "Bearer sk_test_x", "Stripe-Version": API_VERSION})


@pytest.fixture
def chargebee_client() -> ChargebeeClient:
    basic = base64.b64encode(b"cb_key:").decode()
    return ChargebeeClient("https://acme.chargebee.test", {"Authorization": f"Basic {basic}"})


@responses.activate
def test_stripe_events_pages_ask_for_the_mapped_types_in_the_window_and_go_on_after_the_last_id(
        stripe_client: StripeClient) -> None:
    e1 = {"id": "evt_2", "object": "event", "type": "invoice.paid", "created": 1_788_000_100, "data": {"object": {}}}
    unmapped = {"id": "evt_3", "object": "event", "type": "issuing_card.created", "created": 1_788_000_050,
                "data": {"object": {}}}
    e2 = {"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1_788_000_000, "data": {"object": {}}}
    responses.get("https://api.stripe.test/v1/events", json={"object": "list", "has_more": True, "data": [e1, unmapped]})
    responses.get("https://api.stripe.test/v1/events", json={"object": "list", "has_more": False, "data": [e2]})
    first = st.fetch_events(stripe_client, START, END, None)
    second = st.fetch_events(stripe_client, START, END, first.next)
    assert first.next == "evt_3" and second.next is None
    assert [r.key for r in first.records + second.records] == ["evt_2", "evt_1"]  # the webhook's dedup key
    q1, q2 = query(responses.calls[0]), query(responses.calls[1])
    assert q1["limit"] == ["100"]  # Stripe's maximum page
    assert q1["created[gte]"] == [str(int(START.timestamp()))] and q1["created[lt]"] == [str(int(END.timestamp()))]
    if len(st.mapped_types()) <= 20:  # Stripe filters by at most 20 types; past that the hub filters
        assert sorted(q1["types[]"]) == st.mapped_types()
    else:
        assert "types[]" not in q1
    assert "starting_after" not in q1 and q2["starting_after"] == ["evt_3"]
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == "Bearer sk_test_x" and headers["Stripe-Version"] == API_VERSION


@responses.activate
@pytest.mark.parametrize("phase, path, extra", [
    ("customers", "/v1/customers", {}),
    ("subscriptions", "/v1/subscriptions", {"status": ["all"]}),  # the default leaves cancelled ones out
    ("invoices", "/v1/invoices", {}),
    ("charges", "/v1/charges", {}),
])
def test_stripe_list_pages_bound_creation_time_and_page_with_starting_after(
        stripe_client: StripeClient, phase: str, path: str, extra: dict[str, list[str]]) -> None:
    fetch = next(p for p in st.SOURCE.phases if p.name == phase).fetch
    responses.get(f"https://api.stripe.test{path}", json={"object": "list", "has_more": True,
                                                          "data": [{"id": "obj_9", "created": 1_786_000_000}]})
    page = fetch(stripe_client, START, END, "obj_8")
    q = query(responses.calls[0])
    assert page.next == "obj_9"
    assert {k: v for k, v in q.items()} == {"limit": ["100"], "created[gte]": [str(int(START.timestamp()))],
                                            "created[lt]": [str(int(END.timestamp()))],
                                            "starting_after": ["obj_8"], **extra}


def test_stripe_list_objects_become_the_events_that_announced_them_before_the_log_reach() -> None:
    paid = {"id": "in_1", "customer": "cus_1", "status": "paid", "created": 100, "status_transitions": {"paid_at": 200}}
    [record] = st.invoice_facts(paid)
    assert record.key == "bf:invoice.paid:in_1" and record.body["type"] == "invoice.paid"
    assert record.body["created"] == 200 and record.body["data"]["object"] is paid
    ended = {"id": "sub_1", "status": "canceled", "created": 100, "ended_at": 300}
    assert [r.body["type"] for r in st.subscription_facts(ended)] == ["customer.subscription.created",
                                                                       "customer.subscription.deleted"]


@responses.activate
def test_chargebee_events_are_read_oldest_first_with_offset_paging(chargebee_client: ChargebeeClient) -> None:
    event = {"id": "ev_1", "occurred_at": 1_786_000_000, "event_type": "customer_created", "content": {}}
    responses.get("https://acme.chargebee.test/api/v2/events", json={"list": [{"event": event}], "next_offset": "[\"1\"]"})
    responses.get("https://acme.chargebee.test/api/v2/events", json={"list": []})
    first = cb.fetch_events(chargebee_client, START, END, None)
    second = cb.fetch_events(chargebee_client, START, END, first.next)
    assert [r.key for r in first.records] == ["ev_1"] and first.next == "[\"1\"]" and second.next is None
    q1, q2 = query(responses.calls[0]), query(responses.calls[1])
    assert q1 == {"limit": ["100"], "occurred_at[after]": [str(int(START.timestamp()) - 1)],
                  "occurred_at[before]": [str(int(END.timestamp()))], "sort_by[asc]": ["occurred_at"]}
    assert q2["offset"] == ["[\"1\"]"]
    assert responses.calls[0].request.headers["Authorization"] == "Basic " + base64.b64encode(b"cb_key:").decode()


@responses.activate
@pytest.mark.parametrize("phase, resource, field", [
    ("customers", "customers", "created_at"),
    ("subscriptions", "subscriptions", "created_at"),
    ("invoices", "invoices", "date"),
])
def test_chargebee_list_pages_filter_and_sort_on_the_resource_time(
        chargebee_client: ChargebeeClient, phase: str, resource: str, field: str) -> None:
    fetch = next(p for p in cb.SOURCE.phases if p.name == phase).fetch
    responses.get(f"https://acme.chargebee.test/api/v2/{resource}", json={"list": [], "next_offset": "x"})
    page = fetch(chargebee_client, START, END, "w")
    assert page.next == "x"
    assert query(responses.calls[0]) == {"limit": ["100"], f"{field}[after]": [str(int(START.timestamp()) - 1)],
                                         f"{field}[before]": [str(int(END.timestamp()))],
                                         "sort_by[asc]": [field], "offset": ["w"]}


def test_chargebee_paid_invoices_become_a_payment_keyed_on_the_transaction() -> None:
    invoice = {"id": "inv_1", "date": 100, "paid_at": 150, "status": "paid", "customer_id": "c1",
               "currency_code": "USD", "linked_payments": [{"txn_id": "txn_1", "txn_status": "success",
                                                            "txn_amount": 900, "txn_date": 150}]}
    records = list(cb.invoice_facts({"invoice": invoice}))
    assert [r.key for r in records] == ["bf:invoice_generated:inv_1", "bf:payment_succeeded:txn_1"]
    assert records[1].body["content"]["transaction"]["id"] == "txn_1"
