"""The console's pages and forms through Flask's test client: who gets in, CSRF on every form, clear
400s for bad filters, keyset pages with no gaps or repeats, CSV equal to the report, and the
operator actions (cancel, unmerge, reconcile) doing what they say."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest

from hub import kpis as m
from hub.store import Action, Delivery, Event, Subscriber
from hub.store.models import ActionStatus
from hub.store.subscriber_models import Merge
from hub.web import create_app
from tests.helpers import rows
from tests.subscribers.support import ev, feed, money, sub, who

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def csrf_of(client, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, token: str = "admin-test-token"):
    return client.post("/login", data={"token": token, "csrf_token": csrf_of(client), "next": "/actions"})


@pytest.fixture
def signed_in(client):
    assert sign_in(client).status_code == 302
    return client


def scheduled_action(hub, **values) -> int:
    with hub.store.session() as s:
        row = Action(key=f"k{values.get('key', 1)}", connector="klaviyo", name="track_event", params={},
                     due_at=T0 + timedelta(days=3), status=values.get("status", ActionStatus.SCHEDULED),
                     created_at=T0, updated_at=T0)
        s.add(row)
        s.flush()
        return row.id


def test_without_signing_in_pages_lead_to_the_sign_in_form_and_forms_are_refused(client):
    answer = client.get("/subscribers?q=ann@x.com")
    assert answer.status_code == 302 and answer.location == "/login?next=/subscribers?q%3Dann@x.com"
    assert client.post("/actions/cancel", data={"ids": "1", "csrf_token": csrf_of(client)}).status_code == 401
    assert sign_in(client, "wrong").status_code == 401
    assert client.get("/subscribers").status_code == 302


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(client):
    token = csrf_of(client)
    answer = client.post("/login", data={"token": "admin-test-token", "csrf_token": token, "next": "/kpis"})
    assert answer.location == "/kpis"
    client.post("/logout", data={"csrf_token": csrf_of(client, "/kpis")})
    answer = client.post("/login", data={"token": "admin-test-token", "csrf_token": csrf_of(client),
                                         "next": "//evil.example/x"})
    assert answer.location == "/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(hub, signed_in):
    action_id = scheduled_action(hub)
    for token in (None, "forged"):
        answer = signed_in.post("/actions/cancel", data={"ids": str(action_id), **({"csrf_token": token} if token else {})})
        assert answer.status_code == 400 and "csrf_token" in answer.get_data(as_text=True)
    assert rows(hub, Action)[0].status == ActionStatus.SCHEDULED
    # the sign-in form itself is protected too (no login CSRF)
    signed_in.post("/logout", data={"csrf_token": csrf_of(signed_in, "/")})
    assert signed_in.post("/login", data={"token": "admin-test-token"}).status_code == 400


def test_without_an_admin_token_loopback_clients_use_the_console_and_others_are_refused(make_hub):
    hub = make_hub(HUB_ADMIN_TOKEN=None)
    client = create_app(hub).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/login").location == "/"
    remote = client.get("/", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 401 and "HUB_ADMIN_TOKEN" in remote.get_data(as_text=True)


@pytest.mark.parametrize("path, parameter", [
    ("/deliveries?status=lost", "status"), ("/deliveries?connector=nope", "connector"),
    ("/deliveries?limit=0", "limit"), ("/events?before=yesterday", "before"), ("/actions?before=x", "before"),
    ("/kpis?interval=year", "interval"), ("/kpis?from=2025-13-01", "from"), ("/kpis.csv?chart=pie", "chart"),
    ("/kpis?from=2026-02-01&to=2026-01-01", "--to must not be before --from"),
])
def test_a_bad_filter_is_a_400_naming_the_parameter(signed_in, path, parameter):
    answer = signed_in.get(path)
    assert answer.status_code == 400 and parameter in answer.get_data(as_text=True)


def _follow(client, path: str, pattern: str) -> list[str]:
    seen, url = [], path
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(pattern, html)
        found = re.search(r'<a rel="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    return seen


def test_keyset_pages_list_every_row_once_newest_first(hub, signed_in):
    with hub.store.session() as s:
        for i in range(7):
            s.add(Delivery(connector="stripe", dedup_key=f"evt_{i}", headers={}, body=b"{}", received_at=T0,
                           status="processed"))
            # five events share one time: the id breaks the tie, so none is skipped or repeated
            s.add(Event(id=f"00000000-0000-0000-0000-00000000000{i}", type="subscriber.updated",
                        time=T0 if i < 5 else T0 + timedelta(hours=i), provider="stripe", provider_event_id=f"e{i}",
                        provider_type="customer.updated", data={}, recorded_at=T0))
    deliveries = _follow(signed_in, "/deliveries?limit=3", r'href="/deliveries/(\d+)"')
    assert deliveries == [str(i) for i in range(7, 0, -1)]
    events = _follow(signed_in, "/events?limit=2", r'href="/events/([0-9a-f-]+)"')
    assert events == [f"00000000-0000-0000-0000-00000000000{i}" for i in (6, 5, 4, 3, 2, 1, 0)]


def test_each_kpi_csv_holds_the_reports_numbers(hub, signed_in):
    feed(hub, ev("subscription.created", "2025-01-05T09:00:00Z", subscriber=who("stripe", "cus_A", "a@x.com"),
                 subscription=sub("sub_A", "active", 1000)),
         ev("subscription.changed", "2025-03-10T09:00:00Z", subscriber=who("stripe", "cus_A"),
            subscription=sub("sub_A", "active", 1500)))
    with hub.store.session() as s:
        report = m.report(s, m.parse_date("2025-01-01"), m.parse_date("2025-04-30"), "month",
                          m.Rates.from_settings(hub.settings))
    answer = signed_in.get("/kpis.csv?chart=movements&from=2025-01-01&to=2025-04-30&interval=month")
    assert answer.mimetype == "text/csv" and "attachment" in answer.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    periods = report["per_currency"]["USD"]
    assert [r["start"] for r in table] == [p["start"] for p in periods]
    assert [int(r["expansion"]) for r in table] == [p["movements"]["expansion"] for p in periods] == [0, 0, 500, 0]
    assert [int(r["new"]) for r in table] == [1000, 0, 0, 0]
    rates = list(csv.DictReader(io.StringIO(signed_in.get("/kpis.csv?chart=churn&from=2025-01-01&to=2025-04-30")
                                            .get_data(as_text=True))))
    assert [r["active"] for r in rates] == ["1", "1", "1", "1"]


def test_cancelling_from_the_console_cancels_only_what_is_not_being_sent(hub, signed_in):
    waiting, sent = scheduled_action(hub, key=1), scheduled_action(hub, key=2, status=ActionStatus.DONE)
    answer = signed_in.post("/actions/cancel", data={"ids": [str(waiting), str(sent)],
                                                     "csrf_token": csrf_of(signed_in, "/actions")})
    assert answer.status_code == 302
    statuses = {a.id: (a.status, a.last_error) for a in rows(hub, Action)}
    assert statuses == {waiting: ("cancelled", "cancelled by an operator"), sent: ("done", None)}
    assert "Cancelled 1 action." in signed_in.get(answer.location).get_data(as_text=True)


def test_unmerging_from_the_profile_gives_each_record_back_its_own(hub, signed_in):
    feed(hub, ev("subscription.created", "2026-01-01T00:00:00Z", "chargebee", subscriber=who("chargebee", "cb_B"),
                 subscription=sub("cb_sub", "active", 1000)),
         ev("subscriber.created", "2026-01-02T00:00:00Z", "stripe", subscriber=who("stripe", "cus_B", "bo@x.com")),
         ev("payment.succeeded", "2026-01-02T00:00:00Z", "stripe", subscriber=who("stripe", "cus_B"),
            payment={"amount": money(500)}))
    feed(hub, ev("subscriber.updated", "2026-01-03T00:00:00Z", "chargebee",
                 subscriber=who("chargebee", "cb_B", "bo@x.com")))
    (merge,) = rows(hub, Merge)
    page = signed_in.get(f"/subscribers/{merge.winner_id}").get_data(as_text=True)
    assert "Unmerge" in page and "same e-mail bo@x.com" in page
    answer = signed_in.post(f"/subscribers/{merge.winner_id}/unmerge",
                            data={"merge": str(merge.id), "csrf_token": csrf_of(signed_in, "/")})
    assert answer.status_code == 302
    assert len(rows(hub, Subscriber, Subscriber.merged_into_id.is_(None))) == 2
    again = signed_in.post(f"/subscribers/{merge.winner_id}/unmerge",
                           data={"merge": str(merge.id), "csrf_token": csrf_of(signed_in, "/")})
    assert again.status_code == 409 and "already undone" in again.get_data(as_text=True)


def test_a_subscriber_is_found_by_any_of_their_ids_or_name(hub, signed_in):
    feed(hub, ev("subscriber.created", "2026-01-01T00:00:00Z",
                 subscriber=who("stripe", "cus_Z", "zoe@x.com", first_name="Zoe", last_name="Park")))
    (zoe,) = rows(hub, Subscriber)
    for q in ("ZOE@x.com", "cus_Z", "zoe park", "Park", str(zoe.id)):
        assert signed_in.get(f"/subscribers?q={q}").location == f"/subscribers/{zoe.id}", q
    assert "Nobody matches" in signed_in.get("/subscribers?q=nobody@x.com").get_data(as_text=True)


def test_a_reconcile_run_from_the_console_is_shown_with_its_drift(hub, signed_in):
    answer = signed_in.post("/segments/reconcile", data={"csrf_token": csrf_of(signed_in, "/segments")})
    page = signed_in.get(answer.location).get_data(as_text=True)
    assert "Reconciled:" in page and "Last reconcile" in page


def test_the_rules_page_lists_files_rules_and_a_broken_files_errors_at_file_line_col(make_hub, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text("rules:\n  - id: hello\n    on: [subscriber.created]\n    actions:\n"
                                   "      - klaviyo.track_event: {metric: Hello}\n")
    client = create_app(make_hub(HUB_RULES_PATH=str(folder))).test_client()
    sign_in(client)
    page = client.get("/rules").get_data(as_text=True)
    assert "a.yaml" in page and "hello" in page and "subscriber.created" in page and "do not load" not in page
    (folder / "b.yaml").write_text("rules:\n  - id: broken\n    on: [no.such_type]\n    actions: []\n")
    page = client.get("/rules").get_data(as_text=True)
    assert "do not load" in page and re.search(r"b\.yaml:\d+:\d+: ", page)


def test_replaying_the_filtered_failed_deliveries_requeues_only_those(hub, signed_in):
    with hub.store.session() as s:
        for i, connector in enumerate(["stripe", "stripe", "shopify"]):
            s.add(Delivery(connector=connector, dedup_key=f"evt_{i}", headers={}, body=b"{}", received_at=T0,
                           status="failed", error="bad"))
    answer = signed_in.post("/deliveries/replay", data={"connector": "stripe",
                                                        "csrf_token": csrf_of(signed_in, "/deliveries")})
    assert "Replayed 2 failed deliveries" in signed_in.get(answer.location).get_data(as_text=True)
    assert sorted((d.connector, d.status) for d in rows(hub, Delivery)) == [
        ("shopify", "failed"), ("stripe", "received"), ("stripe", "received")]


def test_the_connectors_page_shows_the_setting_to_set_and_the_rate_limit_in_use(hub, signed_in):
    import connectors
    from connectors.base import windows
    from hub.outbound.ratelimit import RateLimiter, limit_key

    klaviyo = connectors.get("klaviyo")
    bucket, spans = sorted(klaviyo.rate_limits_for(hub.settings).items())[0]
    key = limit_key("klaviyo", klaviyo.rate_limit_account(hub.settings), bucket)
    for token in ("a", "b"):
        assert RateLimiter(hub.redis).acquire(key, windows(spans), token).granted
    page = signed_in.get("/connectors").get_data(as_text=True)
    n, seconds = windows(spans)[0]
    assert f"{bucket}: 2 of {n} per {seconds:g} s used" in page
    assert "off (set HUB_CHARGEBEE_WEBHOOK_USERNAME)" in page


def test_segment_sizes_over_time_are_worked_back_from_the_entered_and_exited_events(hub, signed_in):
    from hub.store import utcnow
    from hub.store.subscriber_models import SegmentMembership

    now = utcnow()
    with hub.store.session() as s:
        s.add(Subscriber(id=1, created_at=now, updated_at=now))
        s.add(Subscriber(id=2, created_at=now, updated_at=now))
        s.add_all([SegmentMembership(subscriber_id=1, segment="subscribers", entered_at=now),
                   SegmentMembership(subscriber_id=2, segment="subscribers", entered_at=now)])
        for i, (days_ago, kind) in enumerate([(10, "entered"), (5, "entered"), (5, "entered"), (2, "exited")]):
            s.add(Event(id=f"00000000-0000-0000-0000-0000000000a{i}", type=f"segment.{kind}",
                        time=now - timedelta(days=days_ago), provider="hub", provider_event_id=f"s{i}",
                        provider_type=f"segment.{kind}", data={"segment": {"id": "subscribers"}}, recorded_at=now))
    page = signed_in.get("/segments").get_data(as_text=True)
    # 30 days: 0 members until 10 days ago, then 1, then 3 five days ago, then 2 since two days ago
    assert "subscribers members at the end of each day: 30 points, from 0 to 2 (low 0, high 3)" in page


def test_cohort_retention_and_the_aging_of_open_failed_payments(hub, signed_in):
    a, b, c = (who("stripe", f"cus_{x}", f"{x}@x.com") for x in "abc")
    feed(hub, ev("subscription.created", "2025-01-05T09:00:00Z", subscriber=a, subscription=sub("sub_a", "active", 1000)),
         ev("subscription.created", "2025-01-20T09:00:00Z", subscriber=b, subscription=sub("sub_b", "active", 1000)),
         ev("subscription.created", "2025-02-03T09:00:00Z", subscriber=c, subscription=sub("sub_c", "active", 1000)),
         ev("subscription.cancelled", "2025-02-10T09:00:00Z", subscriber=b, subscription=sub("sub_b", "cancelled", 0)),
         ev("payment.failed", "2025-03-01T09:00:00Z", subscriber=c,
            payment={"amount": money(1000), "subscription_id": "sub_c"}))
    answer = signed_in.get("/kpis.csv?chart=cohorts&from=2025-01-01&to=2025-03-31")
    table = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert table == [["cohort", "subscribers", "month_0", "month_1", "month_2"],
                     ["2025-01", "2", "2", "1", "1"],  # b left in February
                     ["2025-02", "1", "1", "1"],
                     ["2025-03", "0", "0"]]
    aging = list(csv.reader(io.StringIO(signed_in.get("/kpis.csv?chart=aging&from=2025-01-01&to=2025-03-31")
                                        .get_data(as_text=True))))
    assert aging[0] == ["age", "open_cases", "amount_USD"] and aging[-1] == ["over 90 days", "1", "1000"]
    page = signed_in.get("/kpis?from=2025-01-01&to=2025-03-31&cohorts=1").get_data(as_text=True)
    assert 'id="cohort-table"' in page and "(50.0%)" in page


def _people(hub, count: int = 12) -> dict[str, int]:
    """Subscribers s1..s12 (``cus_1``.., ``First1 Last1``..) and one whose e-mail has a LIKE wildcard."""
    from hub.store import ExternalId

    ids = {}
    with hub.store.session() as s:
        for i in range(1, count + 1):
            person = Subscriber(email=f"s{i}@example.com", first_name=f"Ann{i}", last_name=f"Lee{i}",
                                created_at=T0, updated_at=T0)
            s.add(person)
            s.flush()
            s.add(ExternalId(provider="stripe", external_id=f"cus_{i}", subscriber_id=person.id, created_at=T0))
            ids[f"s{i}"] = person.id
        odd = Subscriber(email="a_b%c@example.com", created_at=T0, updated_at=T0)
        s.add(odd)
        s.flush()
        ids["odd"] = odd.id
    return ids


def test_subscriber_search_by_the_start_of_an_email_a_name_or_a_provider_id(hub, signed_in):
    ids = _people(hub)
    listed = lambda q: [int(x) for x in _follow(signed_in, f"/subscribers?q={q}&limit=2",  # noqa: E731
                                                r'<a href="/subscribers/(\d+)"')]
    ones = sorted((ids[f"s{i}"] for i in (1, 10, 11, 12)), reverse=True)
    assert listed("S1") == ones  # s1@, s10@, s11@, s12@ (e-mails any case), two a page, none twice
    everyone = sorted((ids[f"s{i}"] for i in range(1, 13)), reverse=True)
    assert listed("an") == everyone and listed("LEE") == everyone
    assert signed_in.get("/subscribers?q=ann1%20l").location == f"/subscribers/{ids['s1']}"
    assert signed_in.get("/subscribers?q=ANN1").location == f"/subscribers/{ids['s1']}"  # a whole name wins
    # a whole provider id goes to that profile, its start lists them all
    assert signed_in.get("/subscribers?q=cus_1").location == f"/subscribers/{ids['s1']}"
    assert signed_in.get("/subscribers?q=cus_12").location == f"/subscribers/{ids['s12']}"
    assert listed("cus_") == everyone
    assert signed_in.get("/subscribers?q=a_b%25").location == f"/subscribers/{ids['odd']}"
    assert "Nobody matches" in signed_in.get("/subscribers?q=s_1").get_data(as_text=True)  # _ and % are no wildcards
    assert "Nobody matches" in signed_in.get("/subscribers?q=%25").get_data(as_text=True)


def test_subscriber_search_on_sqlite(sqlite_hub):
    from hub.web.console import data

    ids = _people(sqlite_hub)
    with sqlite_hub.store.session() as s:
        found = lambda q, **k: [r["id"] for r in data.subscribers(s, q=q, before=None, limit=50, **k).rows]  # noqa
        ones = sorted((ids[f"s{i}"] for i in (1, 10, 11, 12)), reverse=True)
        assert found("S1") == ones and found("ann") == found("LEE") == sorted(ids.values())[::-1][1:]
        assert found("ANN1") == found("ann1 lee1") == found("ann1 le") == [ids["s1"]]
        assert found("cus_1") == [ids["s1"]] and found("s1@example.com") == [ids["s1"]]
        assert found("a_b%") == [ids["odd"]] and found("s_1") == []
        page = data.subscribers(s, q="cus_", before=None, limit=5)
        assert [r["id"] for r in page.rows] == sorted(ids[f"s{i}"] for i in range(1, 13))[::-1][:5]
        rest = data.subscribers(s, q="cus_", before=page.next, limit=50)
        assert [r["id"] for r in rest.rows] == sorted(ids[f"s{i}"] for i in range(1, 13))[::-1][5:]
