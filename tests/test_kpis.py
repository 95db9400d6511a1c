"""A scripted year across Stripe, Chargebee and Shopify subscribers; every KPI checked against values
worked out by hand (comments give the arithmetic). Money in minor units; EUR at 1.10 USD."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hub.cli import cli
from tests.subscribers.support import ev, feed, money, rules_dir, sub, who

A, B = who("stripe", "cus_A", "a@x.com"), who("stripe", "cus_B", "b@x.com")
C, D = who("chargebee", "cb_C", "c@x.com"), who("chargebee", "cb_D", "d@x.com")
E, F = who("shopify", "501", "e@x.com"), who("shopify", "502", "f@x.com")
G = who("stripe", "cus_G", "g@x.com")
PLANS = {"sub_A": "pro", "sub_B": "pro", "cb_C": "pro", "cb_D": "basic", "c_E": "basic", "c_F": "basic",
         "sub_G": "basic"}


def year() -> list:
    s = lambda id_, *a, **k: sub(id_, *a, plan={"id": PLANS[id_]}, **k)  # noqa: E731
    return [
        ev("subscription.created", "2025-01-01T09:00:00Z", "shopify", subscriber=E, subscription=s("c_E", "active", 1200)),
        ev("subscription.created", "2025-01-05T09:00:00Z", "stripe", subscriber=A, subscription=s("sub_A", "active", 1000)),
        ev("subscription.created", "2025-01-20T09:00:00Z", "stripe", subscriber=B,
           subscription=s("sub_B", "trialing", 2000)),
        ev("subscription.activated", "2025-02-03T09:00:00Z", "stripe", subscriber=B,
           subscription=s("sub_B", "active", 2000)),
        ev("subscription.created", "2025-02-10T09:00:00Z", "chargebee", subscriber=C,
           subscription=s("cb_C", "active", 3000)),
        ev("payment.failed", "2025-03-01T09:00:00Z", "stripe", subscriber=B,
           payment={"amount": money(2000), "subscription_id": "sub_B", "attempt": 1}),
        ev("subscription.created", "2025-03-01T10:00:00Z", "chargebee", subscriber=D,
           subscription=s("cb_D", "trialing", 900)),
        ev("payment.succeeded", "2025-03-05T09:00:00Z", "stripe", subscriber=B,
           payment={"amount": money(2000), "subscription_id": "sub_B"}),
        ev("subscription.cancelled", "2025-03-15T09:00:00Z", "chargebee", subscriber=D,
           subscription=s("cb_D", "cancelled", 0)),
        ev("subscription.changed", "2025-04-10T09:00:00Z", "stripe", subscriber=A, subscription=s("sub_A", "active", 1500)),
        ev("subscription.created", "2025-05-01T09:00:00Z", "shopify", subscriber=F,
           subscription=s("c_F", "active", 1000, currency="EUR")),
        ev("subscription.changed", "2025-06-15T09:00:00Z", "chargebee", subscriber=C,
           subscription=s("cb_C", "active", 2000)),
        ev("payment.failed", "2025-07-01T09:00:00Z", "chargebee", subscriber=C,
           payment={"amount": money(2000), "subscription_id": "cb_C"}),
        ev("subscription.cancelled", "2025-07-20T09:00:00Z", "chargebee", subscriber=C,
           subscription=s("cb_C", "cancelled", 0)),
        ev("subscription.cancelled", "2025-09-03T09:00:00Z", "stripe", subscriber=A,
           subscription=s("sub_A", "cancelled", 0)),
        ev("subscription.reactivated", "2025-10-05T09:00:00Z", "chargebee", subscriber=C,
           subscription=s("cb_C", "active", 2000)),
        ev("subscription.created", "2025-11-03T09:00:00Z", "stripe", subscriber=G, subscription=s("sub_G", "active", 500)),
        ev("subscription.cancelled", "2025-11-20T09:00:00Z", "stripe", subscriber=G,
           subscription=s("sub_G", "cancelled", 0)),
    ]


@pytest.fixture
def hub(make_hub, tmp_path):
    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path), HUB_REPORTING_CURRENCY="USD", HUB_FX_RATES="EUR=1.10")
    feed(hub, *year())
    return hub


def month(report: dict, n: int) -> dict:
    return report["periods"][n - 1]


def test_a_year_of_monthly_kpis(hub):
    result = CliRunner().invoke(cli, ["metrics", "--from", "2025-01-01", "--to", "2025-12-31", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["currency"] == "USD" and len(r["periods"]) == 12
    assert [p["mrr"] for p in r["periods"]] == [
        2200,  # Jan: E 1200 + A 1000 new (B only trialing)
        7200,  # Feb: + B 2000 (trial converted) + C 3000
        7200,  # Mar: B failed and recovered; D's trial lost: no MRR move
        7700,  # Apr: A 1000 -> 1500
        8800,  # May: F 10.00 EUR = 11.00 USD
        7800,  # Jun: C 3000 -> 2000
        5800,  # Jul: C cancelled (-2000)
        5800,  # Aug
        4300,  # Sep: A cancelled (-1500)
        6300,  # Oct: C back at 2000
        6300, 6300]
    assert [p["active"] for p in r["periods"]] == [2, 4, 4, 4, 5, 5, 4, 4, 3, 4, 4, 4]
    assert month(r, 12)["arr"] == 6300 * 12

    jan, feb, mar, apr, may, jun, jul, sep, oct = (month(r, n) for n in (1, 2, 3, 4, 5, 6, 7, 9, 10))
    assert jan["movements"] == {"new": 2200, "expansion": 0, "contraction": 0, "churn": 0, "reactivation": 0,
                                "net": 2200}
    assert jan["customer_churn_rate"] is None and jan["net_revenue_retention"] is None  # nothing at the start
    assert jan["arpa"] == 1100 and jan["trials_started"] == 1

    assert feb["new_subscribers"] == 2 and feb["movements"]["new"] == 5000
    assert feb["customer_churn_rate"] == 0.0 and feb["net_revenue_retention"] == 1.0
    assert feb["arpa"] == 1800  # 7200 / 4
    assert feb["new_member_growth_rate"] == 1.0  # 2 new / 2 at the start
    assert feb["trial_conversion_rate"] == 1.0 and feb["trials_converted"] == 1

    assert mar["dunning_started"] == 1 and mar["dunning_recovered"] == 1
    assert mar["dunning_recovery_rate"] == 1.0 and mar["recovered_revenue"] == 2000
    assert mar["trial_conversion_rate"] == 0.0  # D's trial ended without paying

    assert apr["movements"]["expansion"] == 500
    assert apr["net_revenue_retention"] == round(7700 / 7200, 4)  # 1.0694
    assert may["new_member_growth_rate"] == 0.25 and may["arpa"] == 1760  # 8800 / 5

    assert jun["movements"]["contraction"] == 1000
    assert jun["revenue_churn_rate"] == round(1000 / 8800, 4)  # 0.1136
    assert jun["net_revenue_retention"] == round(7800 / 8800, 4)

    assert jul["churned_subscribers"] == 1 and jul["movements"]["churn"] == 2000
    assert jul["customer_churn_rate"] == 0.2  # 1 of 5
    assert jul["revenue_churn_rate"] == round(2000 / 7800, 4)
    assert jul["arpa"] == 1450 and jul["clv"] == 7250  # 5800 / 4; 1450 / 0.2
    assert jul["dunning_recovery_rate"] == 0.0  # C's failure ended in cancellation

    # CLV from unrounded values: (4300 / 3) / (1 / 4) = 5733.33, not round(4300 / 3) / 0.25 = 5732
    assert sep["customer_churn_rate"] == 0.25 and sep["arpa"] == 1433 and sep["clv"] == 5733
    assert sep["net_revenue_retention"] == round(4300 / 5800, 4)

    assert oct["movements"]["reactivation"] == 2000 and oct["reactivated_subscribers"] == 1
    assert oct["net_revenue_retention"] == 1.0  # reactivation is not retention of the starting base
    assert oct["new_subscribers"] == 0 and oct["arpa"] == 1575


def test_nrr_and_net_mrr_churn_over_the_cohort_active_at_the_start(hub):
    r = json.loads(CliRunner().invoke(cli, ["metrics", "--from", "2025-01-01", "--to", "2025-12-31", "--json"]).output)
    assert [p["net_revenue_retention"] for p in r["periods"]] == [
        None,                       # Jan: nobody at the start
        1.0, 1.0,                   # Feb, Mar: B and C joined in February and are not February's base
        round(7700 / 7200, 4),      # Apr: A's expansion, 1.0694
        1.0,                        # May: F is new
        round(7800 / 8800, 4),      # Jun: C's contraction, 0.8864
        round(5800 / 7800, 4),      # Jul: C's churn, 0.7436
        1.0,
        round(4300 / 5800, 4),      # Sep: A's churn, 0.7414
        1.0,                        # Oct: C's return is not retention
        1.0,                        # Nov: G joined and left within the month: not in the starting base
        1.0]
    assert [p["net_mrr_churn_rate"] for p in r["periods"]] == [
        None, 0.0, 0.0, round(-500 / 7200, 4), 0.0, round(1000 / 8800, 4), round(2000 / 7800, 4), 0.0,
        round(1500 / 5800, 4), 0.0, 0.0, 0.0]
    nov = month(r, 11)
    assert nov["movements"]["new"] == 500 and nov["movements"]["churn"] == 500 and nov["mrr"] == 6300
    assert nov["customer_churn_rate"] == 0.25 and nov["clv"] == 6300  # 1575 x 4 / 1


def test_cohort_retention_by_first_payment_month_and_plan(hub, client):
    result = CliRunner().invoke(cli, ["metrics", "cohorts", "--from", "2025-01", "--to", "2025-12", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert table["from"] == "2025-01" and table["to"] == "2025-12"
    assert [(c["cohort"], c["size"], c["retained"]) for c in table["cohorts"]] == [
        ("2025-01", 2, [2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1]),   # E, A; A cancelled on Sep 3
        ("2025-02", 2, [2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2]),      # B (trial converted Feb 3), C; C away Jul 20 - Oct 5
        ("2025-05", 1, [1, 1, 1, 1, 1, 1, 1, 1]),               # F
        ("2025-11", 1, [0, 0]),                                 # G left within its first month
    ]
    assert table["cohorts"][0]["retention"][8] == 0.5
    auth = {"Authorization": "Bearer admin-test-token"}
    by_plan = client.get("/api/metrics/cohorts?from=2025-01-01&to=2025-12-31&by=plan", headers=auth).get_json()
    assert [(c["cohort"], c["plan"], c["retained"]) for c in by_plan["cohorts"]] == [
        ("2025-01", "basic", [1] * 12), ("2025-01", "pro", [1] * 8 + [0] * 4),
        ("2025-02", "pro", [2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2]), ("2025-05", "basic", [1] * 8),
        ("2025-11", "basic", [0, 0])]
    bad = client.get("/api/metrics/cohorts?by=colour", headers=auth)
    assert bad.status_code == 400 and "by" in bad.get_data(as_text=True)
    text = CliRunner().invoke(cli, ["metrics", "cohorts", "--from", "2025-01", "--to", "2025-12"]).output
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert rows["cohort"][:3] == ["size", "+0", "+1"] and rows["2025-11"] == ["1", "0", "0%", "0", "0%"]
    assert rows["2025-01"][:2] == ["2", "2"] and rows["2025-01"][-2:] == ["1", "50%"]


def test_weekly_kpis_through_the_api(hub, client):
    auth = {"Authorization": "Bearer admin-test-token"}
    weeks = client.get("/api/metrics?from=2025-07-01&to=2025-07-31&interval=week", headers=auth).get_json()
    assert [p["start"] for p in weeks["periods"]] == ["2025-07-01", "2025-07-07", "2025-07-14", "2025-07-21",
                                                      "2025-07-28"]
    assert weeks["periods"][0]["mrr_start"] == 7800 and weeks["periods"][-1]["mrr"] == 5800
    assert weeks["periods"][2]["churned_subscribers"] == 1  # the week of 14 July holds the 20th
    bad = client.get("/api/metrics?from=2025-07-31&to=2025-07-01", headers=auth)
    assert bad.status_code == 400


def test_per_currency_without_a_reporting_currency(make_hub, tmp_path):
    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path))
    feed(hub, *year())
    result = CliRunner().invoke(cli, ["metrics", "--from", "2025-01-01", "--to", "2025-12-31", "--json"])
    blocks = json.loads(result.output)["per_currency"]
    assert sorted(blocks) == ["EUR", "USD"]
    assert blocks["EUR"][4]["movements"]["new"] == 1000 and blocks["EUR"][11]["mrr"] == 1000
    assert blocks["USD"][11]["mrr"] == 5200  # B 2000 + E 1200 + C 2000


def test_a_currency_without_a_rate_is_named(make_hub, tmp_path):
    hub = make_hub(HUB_RULES_PATH=rules_dir(tmp_path), HUB_REPORTING_CURRENCY="USD")
    feed(hub, *year())
    result = CliRunner().invoke(cli, ["metrics", "--from", "2025-01-01", "--to", "2025-12-31"])
    assert result.exit_code == 2 and "no exchange rate for EUR into USD" in result.output
