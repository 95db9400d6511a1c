"""``POST /api/changes/batches``: CSV or JSON rows, all checked first (every bad row with its line and
reason, nothing stored or applied), then planned by a job through the same path as the API and
``hub changes apply``; ``GET`` shows progress and each row's result; cancel stops the rest."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from hub.changes import apply, batch
from hub.store import Action
from hub.store.change_models import ChangeBatch
from tests.changes.support import subscription
from tests.helpers import drain, rows

AUTH = {"Authorization": "Bearer admin-test-token"}


@pytest.fixture
def subs(hub):
    for i in range(3):
        subscription(hub, "chargebee", f"cb_{i}", plan="basic-USD", amount=1000)
    subscription(hub, "shopify", "24398905522", plan="gid://shopify/ProductVariant/111", amount=2990)
    return hub


def test_every_bad_json_row_is_reported_with_its_line_and_nothing_is_stored(subs, client):
    answer = client.post("/api/changes/batches", headers=AUTH, json={"rows": [
        {"subscription": "cb_0", "change": "pause"},
        {"subscription": "cb_1", "change": "change_quantity", "quantity": 0},
        {"subscription": "cb_nope", "change": "pause"},
        {"subscription": "24398905522", "change": "change_plan", "plan": "price_pro", "plan_amount": 100},
        {"subscription": "cb_2", "change": "pause", "colour": "red"},
        "pause cb_2",
    ]})
    assert answer.status_code == 400 and answer.json["message"] == "5 bad row(s); nothing applied"
    assert [(r["line"], r["reason"].split(":")[0]) for r in answer.json["bad_rows"]] == [
        (2, "quantity"), (3, "no subscription 'cb_nope'"), (4, "plan"), (5, "unknown field(s) colour"),
        (6, "must be an object")]
    assert rows(subs, ChangeBatch) == [] and rows(subs, Action) == []


def test_a_csv_batch_reports_the_files_lines(subs, client):
    text = "subscription,change,quantity\ncb_0,pause,\ncb_1,change_quantity,x\ncb_2,explode,\n"
    answer = client.post("/api/changes/batches", headers={**AUTH, "Content-Type": "text/csv"}, data=text)
    assert answer.status_code == 400
    assert [r["line"] for r in answer.json["bad_rows"]] == [3, 4]
    assert "quantity: Not a valid integer." in answer.json["bad_rows"][0]["reason"]
    assert rows(subs, Action) == []


def test_a_batch_is_applied_by_a_job_and_shows_each_rows_result(subs, client):
    text = "subscription,change,quantity\ncb_0,pause,\ncb_1,change_quantity,4\nshopify:24398905522,resume,\n"
    made = client.post("/api/changes/batches?name=spring", headers={**AUTH, "Content-Type": "text/csv"}, data=text)
    assert made.status_code == 202, made.json
    assert made.json["status"] == "running" and made.json["rows"]["pending"] == 3
    drain(subs)
    shown = client.get(f"/api/changes/batches/{made.json['id']}", headers=AUTH).json
    assert shown["status"] == "planned" and shown["rows"]["planned"] == 3 and shown["progress"] == 1.0
    assert shown["changes"] == {"dry_run": 3}  # no provider credentials in the tests: recorded, not sent
    results = {r["line"]: r for r in shown["results"]}
    assert results[3]["change"] == "change_quantity" and results[3]["new"] is True
    by_id = {a.id: a for a in rows(subs, Action)}
    assert (by_id[results[3]["id"]].name, by_id[results[3]["id"]].params["quantity"]) == ("change_subscription", 4)
    assert by_id[results[4]["id"]].connector == "shopify" and len(by_id) == 3
    # the same rows under the same name again: every row is already there, nothing is applied twice
    again = client.post("/api/changes/batches?name=spring", headers={**AUTH, "Content-Type": "text/csv"}, data=text)
    drain(subs)
    shown = client.get(f"/api/changes/batches/{again.json['id']}", headers=AUTH).json
    assert [r["new"] for r in shown["results"]] == [False] * 3 and len(rows(subs, Action)) == 3


def test_a_dry_run_answers_each_rows_preview_and_stores_nothing(subs, client):
    answer = client.post("/api/changes/batches?dry_run=true", headers=AUTH,
                         json={"rows": [{"subscription": "cb_0", "change": "change_quantity", "quantity": 3}]})
    assert answer.status_code == 200 and answer.json["rows"][0]["preview"]["charge_per_period"]["after"] == 3000
    assert rows(subs, ChangeBatch) == [] and rows(subs, Action) == []


def test_cancel_stops_the_rows_not_planned_and_the_changes_not_sent(subs, client):
    later = (date.today() + timedelta(days=20)).isoformat()
    made = client.post("/api/changes/batches", headers=AUTH, json={"rows": [
        {"subscription": "cb_0", "change": "cancel", "effective": later}]}).json
    drain(subs)  # planned for later: scheduled, not sent
    other = client.post("/api/changes/batches", headers=AUTH, json={"rows": [
        {"subscription": f"cb_{i}", "change": "pause"} for i in (1, 2)]}).json
    assert client.post(f"/api/changes/batches/{made['id']}/cancel", headers=AUTH).status_code == 200
    cancelled = client.post(f"/api/changes/batches/{other['id']}/cancel", headers=AUTH).json
    drain(subs)
    assert cancelled["status"] == "cancelled" and cancelled["rows"]["cancelled"] == 2
    [action] = rows(subs, Action)  # the job found the second batch cancelled: its rows were never planned
    assert action.status == "cancelled" and action.last_error == f"change batch {made['id']} cancelled"
    shown = client.get(f"/api/changes/batches/{made['id']}", headers=AUTH).json
    assert shown["results"][0]["change_status"] == "cancelled" and shown["progress"] == 1.0


def test_a_job_that_dies_midway_is_run_again_and_plans_only_the_rest(subs, monkeypatch):
    checked, bad = batch.read_json([{"subscription": f"cb_{i}", "change": "pause"} for i in range(3)], "api")
    batch_id = batch.create(subs, "api", checked)
    submit, calls = apply.submit_many, []

    def dies_at_the_second(hub, items, **kw):
        calls.append(items)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the worker is killed
        return submit(hub, items, **kw)

    monkeypatch.setattr(batch, "CHUNK", 1)
    monkeypatch.setattr(apply, "submit_many", dies_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        batch.run_stored(subs, batch_id)
    assert [a.subject for a in rows(subs, Action)] == ["cb_0"]
    monkeypatch.setattr(apply, "submit_many", submit)
    assert batch.run_stored(subs, batch_id) == "planned"
    assert sorted(a.subject for a in rows(subs, Action)) == ["cb_0", "cb_1", "cb_2"]
    assert batch.view(subs, batch_id)["rows"]["planned"] == 3


def test_unknown_batches_are_404(client):
    assert client.get("/api/changes/batches/99", headers=AUTH).status_code == 404
    assert client.post("/api/changes/batches/99/cancel", headers=AUTH).status_code == 404
    assert client.post("/api/changes/batches", headers=AUTH, json={"rows": []}).status_code == 400


def test_a_batch_whose_job_vanished_is_planned_after_the_sweeper_enqueues_it_again(subs, client):
    from hub import scheduler

    text = "subscription,change\ncb_0,pause\ncb_1,pause\n"
    made = client.post("/api/changes/batches?name=lost", headers={**AUTH, "Content-Type": "text/csv"}, data=text)
    assert made.status_code == 202
    subs.redis.flushdb()  # Redis lost the batch's job before a worker took it
    assert scheduler.sweep(subs, stranded_after=0)["change_batches"] == 1
    assert scheduler.sweep(subs, stranded_after=0)["change_batches"] == 0  # its new job is waiting
    drain(subs)
    shown = client.get(f"/api/changes/batches/{made.json['id']}", headers=AUTH).json
    assert shown["status"] == "planned" and shown["rows"]["planned"] == 2
    assert sorted(a.subject for a in rows(subs, Action)) == ["cb_0", "cb_1"]
