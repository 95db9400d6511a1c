"""The embedded default (SQLite, in-process queue): profiles, segments and KPIs work there too."""

from __future__ import annotations

from datetime import date

from hub.kpis import Rates, report
from hub.subscribers import profile
from tests.subscribers.support import ev, feed, sub, who


def test_profiles_segments_and_kpis_on_sqlite(sqlite_hub, tmp_path):
    hub = sqlite_hub
    a = who("stripe", "cus_A", "a@x.com")
    feed(hub, ev("subscription.created", "2025-01-05T00:00:00Z", subscriber=a, subscription=sub("s1", "active", 1000)),
         ev("subscription.changed", "2025-02-05T00:00:00Z", subscriber=a, subscription=sub("s1", "active", 1500)),
         ev("subscription.cancelled", "2025-03-05T00:00:00Z", subscriber=a, subscription=sub("s1", "cancelled", 0)))
    with hub.store.session() as s:
        shown = profile.show(s, "a@x.com")
        result = report(s, date(2025, 1, 1), date(2025, 3, 31), "month", Rates(None, {}))
    assert shown["subscriptions"][0]["status"] == "cancelled" and shown["segments"] == []
    usd = result["per_currency"]["USD"]
    assert [p["mrr"] for p in usd] == [1000, 1500, 0]
    assert [p["movements"]["expansion"] for p in usd] == [0, 500, 0] and usd[2]["customer_churn_rate"] == 1.0
