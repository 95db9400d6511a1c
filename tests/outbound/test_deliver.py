"""Delivery mechanics on real PostgreSQL and Redis: holds, batching, circuit, credentials, 429 pause."""

from __future__ import annotations

import json
import time

import responses
from click.testing import CliRunner
from rq import SimpleWorker
from sqlalchemy import select

from hub.cli import cli
from hub.jobs import make_worker
from hub.outbound import deliver, outbox
from hub.store import Action, Attempt
from tests.helpers import drain, rows
from tests.outbound.support import FakeConnector, add_actions, register

URL = "https://dest.test"


def actions(hub, *ids):
    with hub.store.session() as s:
        return {a.id: a for a in s.execute(select(Action).where(Action.id.in_(ids))).scalars()}


def attempts(hub, action_id):
    return rows(hub, Attempt, Attempt.action_id == action_id)


@responses.activate
def test_rate_limited_actions_wait_without_using_an_attempt(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL, limits={"default": (2, 60.0)}))
    responses.post(f"{URL}/notes", status=201)
    ids = add_actions(hub, "fake", "note", [{"text": f"n{i}"} for i in range(5)])
    drain(hub)
    assert len(responses.calls) == 2
    by_id = actions(hub, *ids)
    booked = [a for a in by_id.values() if a.status == "scheduled"]
    in_line = [a for a in by_id.values() if a.status == "queued"]
    # one booking per room the two sends free (a window later); the fifth waits in the outbox line
    assert len(booked) == 2 and len(in_line) == 1
    for action in booked:
        assert (action.due_at - by_id[ids[0]].updated_at).total_seconds() > 55
        assert "room booked" in action.last_error
    assert "waiting in line" in in_line[0].last_error
    for action in booked + in_line:
        assert action.attempts == 0 and attempts(hub, action.id) == []


@responses.activate
def test_a_send_hands_the_room_it_frees_to_the_next_action_in_line(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL, limits={"default": (1, 0.3)}))
    responses.post(f"{URL}/notes", status=201)
    ids = add_actions(hub, "fake", "note", [{"text": f"n{i}"} for i in range(3)])
    outbox.dispatch(hub)  # one pass, as a worker runs it (drain would also sweep the one in line)
    make_worker(hub.redis, ["deliver-fake"], SimpleWorker).work(burst=True)
    by_status = {a.status: a for a in actions(hub, *ids).values()}
    assert sorted(by_status) == ["done", "queued", "scheduled"]  # sent, booked, in line
    booked, in_line = by_status["scheduled"].id, by_status["queued"].id
    with hub.store.session() as s:  # the booked room is open now: let it fall due
        s.get(Action, booked).due_at = by_status["done"].updated_at
    time.sleep(0.35)
    outbox.dispatch(hub, [booked])
    deliver.deliver(hub, booked)  # its job sends it and books the room it frees for the one in line
    after = actions(hub, booked, in_line)
    assert after[booked].status == "done" and after[in_line].status == "scheduled"
    assert "room booked" in after[in_line].last_error and after[in_line].attempts == 0


@responses.activate
def test_batch_coalesces_per_group_and_retries_only_failed_items(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL))
    responses.post(f"{URL}/notes/batch", status=207)
    ids = add_actions(hub, "fake", "bulk_note", [
        {"text": "a"}, {"text": "b", "fail": "retry"}, {"text": "c", "fail": "permanent"},
        {"text": "d", "group": "g2"}, {"text": "e", "group": "g2"}])
    outbox.dispatch(hub)
    deliver.deliver(hub, ids[0])
    sent = sorted(json.loads(c.request.body)["items"] for c in responses.calls)
    assert sent == [["a", "b", "c"], ["d", "e"]]  # one call per group
    by_id = actions(hub, *ids)
    assert [by_id[i].status for i in ids] == ["done", "scheduled", "failed", "done", "done"]
    assert attempts(hub, ids[1])[0].outcome == "retry" and attempts(hub, ids[1])[0].error
    assert attempts(hub, ids[0])[0].request["batch"] == {"size": 3, "index": 0}
    # the retry carries only the failed item
    with hub.store.session() as s:
        s.get(Action, ids[1]).due_at = s.get(Action, ids[0]).created_at
    responses.post(f"{URL}/notes", status=201)  # one item left: the single endpoint
    outbox.dispatch(hub)
    deliver.deliver(hub, ids[1])
    assert len(responses.calls) == 3
    assert json.loads(responses.calls[2].request.body)["text"] == "b"
    assert actions(hub, ids[1])[ids[1]].status == "done"
    assert attempts(hub, ids[1])[-1].number == 2


@responses.activate
def test_a_failing_destination_opens_its_circuit_and_its_actions_wait(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL, failures=3, cooldown=60))
    responses.post(f"{URL}/notes", status=503)
    add_actions(hub, "fake", "note", [{"text": f"n{i}"} for i in range(3)])
    drain(hub)
    assert len(responses.calls) == 3
    more = add_actions(hub, "fake", "note", [{"text": f"m{i}"} for i in range(4)])
    drain(hub)
    assert len(responses.calls) == 3  # open: nothing sent
    for action in actions(hub, *more).values():
        assert action.status == "scheduled" and action.attempts == 0 and "circuit open" in action.last_error
    listing = CliRunner().invoke(cli, ["connectors", "--json"])
    [fake] = [json.loads(line) for line in listing.output.splitlines() if '"fake"' in line]
    assert fake["circuit"]["state"] == "open"


@responses.activate
def test_half_open_sends_one_probe_and_its_outcome_decides(hub, monkeypatch):
    from hub.outbound.circuit import Circuit

    register(monkeypatch, FakeConnector("fake", URL, failures=1, cooldown=60))
    circuit = Circuit(hub.redis)
    circuit.failure("fake", 1, 0.0)  # open, cooldown over: the next call is the probe
    responses.post(f"{URL}/notes", status=503)
    ids = add_actions(hub, "fake", "note", [{"text": f"n{i}"} for i in range(3)])
    outbox.dispatch(hub)
    deliver.deliver(hub, ids[0])
    assert len(responses.calls) == 1  # only the probe went; it failed: open again, the others wait
    assert sorted(a.status for a in actions(hub, *ids).values()) == ["scheduled"] * 3
    assert sum(a.attempts for a in actions(hub, *ids).values()) == 1
    circuit.failure("fake", 1, 0.0)  # cooldown over again
    responses.replace(responses.POST, f"{URL}/notes", status=201)
    [again] = add_actions(hub, "fake", "note", [{"text": "probe"}])
    outbox.dispatch(hub, [again])
    deliver.deliver(hub, again)
    assert actions(hub, again)[again].status == "done"
    assert circuit.state("fake")["state"] == "closed"


@responses.activate
def test_401_marks_credentials_invalid_until_a_check_succeeds(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL))
    responses.post(f"{URL}/notes", status=401, json={"message": "bad token"})
    [action_id] = add_actions(hub, "fake", "note", [{"text": "x"}])
    drain(hub)
    assert actions(hub, action_id)[action_id].status == "failed"
    listing = CliRunner().invoke(cli, ["connectors"])
    assert "invalid (HTTP 401)" in listing.output
    from hub.web import create_app

    ready = create_app(hub).test_client().get("/readyz").get_json()
    assert ready["connectors"]["fake"]["credentials"] == "invalid"
    assert "secret-token" not in json.dumps(ready)
    responses.get(f"{URL}/me", status=200, json={})
    result = CliRunner().invoke(cli, ["connectors", "test", "fake"])
    assert result.exit_code == 0, result.output
    assert create_app(hub).test_client().get("/readyz").get_json()["connectors"]["fake"]["credentials"] == "ok"


@responses.activate
def test_a_429_pauses_the_bucket_for_every_worker(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL, limits={"default": (100, 1.0)}))
    responses.post(f"{URL}/notes", status=429, headers={"Retry-After": "30"})
    first = add_actions(hub, "fake", "note", [{"text": "a"}])
    drain(hub)
    rest = add_actions(hub, "fake", "note", [{"text": f"n{i}"} for i in range(3)])
    drain(hub)
    assert len(responses.calls) == 1  # the others did not hammer it
    [a] = actions(hub, *first).values()
    assert a.status == "scheduled" and attempts(hub, a.id)[0].status_code == 429
    for action in actions(hub, *rest).values():
        assert action.status == "scheduled" and action.attempts == 0
        assert (action.due_at - a.updated_at).total_seconds() > 25


@responses.activate
def test_hub_send_performs_one_action_and_prints_the_outcome(hub, monkeypatch):
    register(monkeypatch, FakeConnector("fake", URL))
    responses.post(f"{URL}/notes", status=201, json={"id": 7})
    result = CliRunner().invoke(cli, ["send", "fake.note", "--params", '{"text": "hello"}', "--key", "k1"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["outcome"] == "ok" and printed["status_code"] == 201 and printed["response"]["body"] == {"id": 7}
    assert printed["request"]["headers"]["Authorization"] == "***"
    assert json.loads(responses.calls[0].request.body) == {"text": "hello", "key": "k1"}
    bad = CliRunner().invoke(cli, ["send", "fake.note", "--params", "{}"])
    assert bad.exit_code == 1 and "invalid parameters" in bad.output
