"""Cohort KPIs computed in SQL, against figures worked out by hand, on PostgreSQL and on the embedded
SQLite default: the retention table by first-payment month and plan (a subscriber paying in two
currencies counts once; leaving and returning within a month is still paying at its end; joining
and leaving within a month is a cohort of one with nobody retained), and the starting cohort's MRR
behind net revenue retention (a member of it who leaves and returns within the period is retained;
a new currency of a member is not). Money in minor units; EUR at 1.10 USD."""

from __future__ import annotations

from datetime import date

import pytest

from hub import runtime
from hub.config import load_settings
from hub.kpis import Rates, cohorts, report
from hub.runtime import Hub
from hub.store.migrate import upgrade
from tests.conftest import BASE_ENV
from tests.subscribers.support import ev, feed, rules_dir, sub, who

P, Q = who("stripe", "cus_P", "p@x.com"), who("stripe", "cus_Q", "q@x.com")
R, S = who("stripe", "cus_R", "r@x.com"), who("stripe", "cus_S", "s@x.com")
SETTINGS = {"HUB_REPORTING_CURRENCY": "USD", "HUB_FX_RATES": "EUR=1.10"}


def spring() -> list:
    s = lambda id_, status, mrr, plan, **k: sub(id_, status, mrr, plan={"id": plan}, **k)  # noqa: E731
    return [
        ev("subscription.created", "2025-01-10T09:00:00Z", subscriber=P, subscription=s("sub_P1", "active", 1000, "gold")),
        ev("subscription.created", "2025-01-20T09:00:00Z", subscriber=Q, subscription=s("sub_Q", "active", 2000, "silver")),
        ev("subscription.created", "2025-01-25T09:00:00Z", subscriber=R, subscription=s("sub_R", "trialing", 700, "gold")),
        ev("subscription.cancelled", "2025-02-03T09:00:00Z", subscriber=Q, subscription=s("sub_Q", "cancelled", 0, "silver")),
        ev("subscription.created", "2025-02-05T09:00:00Z", subscriber=P,
           subscription=s("sub_P2", "active", 500, "silver", currency="EUR")),
        ev("subscription.created", "2025-02-14T09:00:00Z", subscriber=S, subscription=s("sub_S", "active", 900, "gold")),
        ev("subscription.cancelled", "2025-02-20T09:00:00Z", subscriber=S, subscription=s("sub_S", "cancelled", 0, "gold")),
        ev("subscription.reactivated", "2025-02-25T09:00:00Z", subscriber=Q,
           subscription=s("sub_Q", "active", 2000, "silver")),
        ev("subscription.activated", "2025-03-02T09:00:00Z", subscriber=R, subscription=s("sub_R", "active", 700, "gold")),
        ev("subscription.cancelled", "2025-03-10T09:00:00Z", subscriber=P, subscription=s("sub_P1", "cancelled", 0, "gold")),
        ev("subscription.cancelled", "2025-03-15T09:00:00Z", subscriber=Q, subscription=s("sub_Q", "cancelled", 0, "silver")),
        ev("subscription.cancelled", "2025-04-10T09:00:00Z", subscriber=P,
           subscription=s("sub_P2", "cancelled", 0, "silver", currency="EUR")),
    ]


@pytest.fixture(params=["postgresql", "sqlite"])
def fed(request, tmp_path):
    if request.param == "postgresql":
        hub = request.getfixturevalue("make_hub")(HUB_RULES_PATH=rules_dir(tmp_path), **SETTINGS)
        feed(hub, *spring())
        yield hub
        return
    env = {**BASE_ENV, **SETTINGS, "HUB_RULES_PATH": rules_dir(tmp_path),
           "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    hub = Hub(load_settings(environ=env))
    upgrade(hub.store)
    runtime.use(hub)
    try:
        feed(hub, *spring())
        yield hub
    finally:
        runtime.use(None)
        hub.close()


def test_retention_by_first_payment_month(fed):
    with fed.store.session() as session:
        table = cohorts.cohorts(session, date(2025, 1, 1), date(2025, 4, 30))
    assert (table["from"], table["to"], table["by"]) == ("2025-01", "2025-04", "month")
    assert [(c["cohort"], c["size"], c["retained"], c["retention"]) for c in table["cohorts"]] == [
        # P: USD from Jan 10, EUR too from Feb 5, USD gone Mar 10, EUR gone Apr 10: paying at the end
        # of Jan, Feb, Mar (counted once while paying in two currencies), not Apr.
        # Q: left Feb 3, back Feb 25 (paying at February's end), left for good Mar 15.
        ("2025-01", 2, [2, 2, 1, 0], [1.0, 1.0, 0.5, 0.0]),
        ("2025-02", 1, [0, 0, 0], [0.0, 0.0, 0.0]),  # S joined Feb 14 and left Feb 20
        ("2025-03", 1, [1, 1], [1.0, 1.0]),  # R: the January trial is no payment; paying from Mar 2
    ]


def test_retention_by_first_payment_month_and_plan(fed):
    with fed.store.session() as session:
        table = cohorts.cohorts(session, date(2025, 1, 1), date(2025, 4, 30), by="plan")
    assert [(c["cohort"], c["plan"], c["size"], c["retained"]) for c in table["cohorts"]] == [
        ("2025-01", "gold", 1, [1, 1, 1, 0]),  # P's first subscription is the gold one
        ("2025-01", "silver", 1, [1, 1, 0, 0]),
        ("2025-02", "gold", 1, [0, 0, 0]),
        ("2025-03", "gold", 1, [1, 1]),
    ]


def test_a_later_range_leaves_earlier_cohorts_out_and_counts_their_members_once(fed):
    with fed.store.session() as session:
        table = cohorts.cohorts(session, date(2025, 2, 10), date(2025, 3, 5))
    assert [(c["cohort"], c["size"], c["retained"]) for c in table["cohorts"]] == [
        ("2025-02", 1, [0, 0]), ("2025-03", 1, [1])]


def test_net_revenue_retention_of_the_starting_cohort(fed):
    with fed.store.session() as session:
        r = report(session, date(2025, 1, 1), date(2025, 4, 30), "month", Rates.from_settings(fed.settings))
    assert [p["mrr_start"] for p in r["periods"]] == [0, 3000, 3550, 1250]
    assert [p["net_revenue_retention"] for p in r["periods"]] == [
        None,               # nobody at the start
        1.0,                # Feb: P 1000 + Q 2000 (left and back within the month); P's EUR and S are new
        round(550 / 3550, 4),  # Mar: of P 1000 + P 550 (EUR) + Q 2000, only P's EUR is left
        round(700 / 1250, 4),  # Apr: P's EUR gone, R's 700 stays
    ]
    assert [p["net_mrr_churn_rate"] for p in r["periods"]] == [
        None, 0.0, round(3000 / 3550, 4), round(550 / 1250, 4)]


def test_net_revenue_retention_by_week_from_a_mid_week_start(fed):
    with fed.store.session() as session:
        r = report(session, date(2025, 2, 1), date(2025, 2, 28), "week", Rates.from_settings(fed.settings))
    assert [(p["start"], p["mrr_start"], p["net_revenue_retention"]) for p in r["periods"]] == [
        ("2025-02-01", 3000, 1.0),            # Saturday to Sunday: nothing moves
        ("2025-02-03", 3000, round(1000 / 3000, 4)),  # Q leaves; P's EUR is new
        ("2025-02-10", 1550, 1.0),            # S joins
        ("2025-02-17", 2450, round(1550 / 2450, 4)),  # S leaves
        ("2025-02-24", 1550, 1.0),            # Q's return is not retention of this week's cohort
    ]


def test_the_ledger_figures_follow_late_rows_and_cost_only_the_new_ones(make_hub):
    from datetime import datetime, timezone

    from hub.kpis import ledger
    from hub.store import Subscriber
    from hub.store.subscriber_models import MrrMovement

    hub = make_hub()
    at = lambda text: datetime.fromisoformat(text).replace(tzinfo=timezone.utc)  # noqa: E731
    with hub.store.session() as s:
        x = Subscriber(created_at=at("2025-01-01T00:00:00"), updated_at=at("2025-01-01T00:00:00"))
        s.add(x)
        s.flush()
        s.add(MrrMovement(subscriber_id=x.id, event_id="e1", time=at("2025-03-10T09:00:00"), kind="new",
                          currency="USD", delta_minor=1000, mrr_before_minor=0, mrr_after_minor=1000))
    with hub.store.session() as s:
        assert ledger.derive(s) == 1 and ledger.derive(s) == 0  # done once, then nothing new to do
        assert cohorts.cohorts(s, date(2025, 1, 1), date(2025, 4, 30))["cohorts"] == [
            {"cohort": "2025-03", "size": 1, "retained": [1, 1], "retention": [1.0, 1.0]}]
        # a payment in February recorded late (say, by a backfill): the subscriber's rows are recomputed
        s.add(MrrMovement(subscriber_id=x.id, event_id="e0", time=at("2025-02-01T09:00:00"), kind="new",
                          currency="USD", delta_minor=500, mrr_before_minor=0, mrr_after_minor=500))
        s.flush()
        assert cohorts.cohorts(s, date(2025, 1, 1), date(2025, 4, 30))["cohorts"] == [
            {"cohort": "2025-02", "size": 1, "retained": [1, 1, 1], "retention": [1.0, 1.0, 1.0]}]
        march = s.query(MrrMovement).filter_by(event_id="e1").one()
        assert (march.opening_day_minor, march.opening_week_minor, march.opening_month_minor) == (500, 500, 500)
        assert (march.paying_change, march.first_payment, march.first_paid_at) == (0, False, at("2025-02-01T09:00:00"))


def test_net_revenue_retention_by_day_over_four_months(fed):
    with fed.store.session() as session:
        r = report(session, date(2025, 1, 1), date(2025, 4, 30), "day", Rates.from_settings(fed.settings))
    days = {p["start"]: p for p in r["periods"]}
    assert len(days) == 120 and days["2025-04-30"]["mrr"] == 700
    assert (days["2025-02-03"]["mrr_start"], days["2025-02-03"]["net_revenue_retention"]) == (3000, round(1000 / 3000, 4))
    assert (days["2025-02-25"]["mrr_start"], days["2025-02-25"]["net_revenue_retention"]) == (1550, 1.0)
    assert (days["2025-03-10"]["mrr_start"], days["2025-03-10"]["net_revenue_retention"]) == (
        4250, round(3250 / 4250, 4))  # R joined on the 2nd; P's USD 1000 goes on the 10th


def test_db_upgrade_derives_the_ledger_figures_a_first_kpi_read_would_otherwise_derive(fed):
    from click.testing import CliRunner
    from sqlalchemy import update

    from hub.cli import cli
    from hub.kpis import ledger
    from hub.store.subscriber_models import MrrMovement

    with fed.store.session() as session:  # as after the migration that added them to an existing ledger
        session.execute(update(MrrMovement).values(paying_change=None))
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "cohort figures of the MRR ledger derived for 4 subscribers" in result.output
    with fed.store.session() as session:
        assert ledger.derive(session) == 0
        assert [c["retained"] for c in cohorts.cohorts(session, date(2025, 1, 1), date(2025, 4, 30))["cohorts"]] == [
            [2, 2, 1, 0], [0, 0, 0], [1, 1]]
