"""The preview's proration by the daily-rate method, worked out by hand.

The period is 1-30 November (30 days); the change takes effect on 21 November, 10 days before its end.
daily rate = period charge / 30; the new charge applies and the old one is credited for 10 days.
"""

from __future__ import annotations

from hub.changes.preview import preview
from hub.changes.request import ChangeRequest
from hub.store import Subscription
from tests.changes.support import MID, subscription


def _preview(hub, ref: str, **request):
    with hub.store.session() as s:
        sub = s.query(Subscription).filter_by(external_id=ref).one()
        return preview(s, sub, ChangeRequest().load(request), MID)


def test_a_mid_cycle_upgrade_charges_the_difference_for_the_days_left(hub):
    subscription(hub, "stripe", "sub_basic", plan="price_basic", amount=3000)  # 30.00 a month
    subscription(hub, "stripe", "sub_other", plan="price_pro", amount=6000)  # the hub has seen pro at 60.00
    shown = _preview(hub, "sub_basic", change="change_plan", plan="price_pro")
    # (6000 - 3000) / 30 days x 10 days left = 1000: the subscriber owes 10.00
    assert shown["charge_per_period"] == {"before": 3000, "after": 6000, "currency": "USD"}
    assert shown["proration"]["amount"] == {"minor": 1000, "currency": "USD"}
    assert shown["proration"]["days_in_period"] == 30 and shown["proration"]["tags"] == ["mid-cycle change"]


def test_a_mid_cycle_downgrade_is_a_credit(hub):
    subscription(hub, "chargebee", "cb_pro", plan="pro-USD", amount=9000)
    shown = _preview(hub, "cb_pro", change="change_plan", plan="basic-USD", plan_amount=4500)
    # (4500 - 9000) / 30 x 10 = -1500: 15.00 back to the subscriber
    assert shown["proration"]["amount"]["minor"] == -1500


def test_a_quantity_change_prorates_the_seats_added(hub):
    subscription(hub, "stripe", "sub_seats", plan="price_seat", amount=1000, quantity=3)  # 3 x 10.00
    shown = _preview(hub, "sub_seats", change="change_quantity", quantity=5)
    # (5000 - 3000) / 30 x 10 = 666.67 -> 667
    assert shown["charge_per_period"]["after"] == 5000 and shown["proration"]["amount"]["minor"] == 667


def test_a_change_at_the_period_end_has_no_proration(hub):
    subscription(hub, "stripe", "sub_later", plan="price_seat", amount=1000, quantity=3)
    shown = _preview(hub, "sub_later", change="change_quantity", quantity=1, effective="period_end")
    assert shown["proration"] is None and shown["effective_at"].startswith("2026-12-01")


def test_an_unknown_plan_needs_its_amount(hub):
    import pytest

    from hub.changes.preview import PreviewError

    subscription(hub, "stripe", "sub_x", plan="price_basic", amount=3000)
    with pytest.raises(PreviewError, match="plan_amount"):
        _preview(hub, "sub_x", change="change_plan", plan="price_never_seen")
