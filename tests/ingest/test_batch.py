"""Ingest in batches: one job takes many received deliveries in one transaction, in arrival order,
withdraws the jobs of those it took, isolates a bad one, and never gives up a delivery another
transaction holds."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from hub import jobs
from hub.ingest import pipeline
from hub.store import Action, Delivery, Event, Subscriber
from hub.web import create_app
from tests.conftest import FIXTURES
from tests.helpers import rows, stripe_event, stripe_headers

RULES = str(FIXTURES / "rules" / "payment_failed_only.yaml")  # one action per payment.failed


def _post(client, body: bytes) -> int:
    answer = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert answer.status_code == 200
    return answer.json["delivery"]


def _payment_failed(n: int) -> bytes:
    return stripe_event("invoice.payment_failed", {
        "id": f"in_b{n}", "object": "invoice", "customer": f"cus_b{n}", "customer_email": f"b{n}@example.com",
        "currency": "usd", "amount_due": 1000 + n, "attempt_count": 1, "status": "open"}, event_id=f"evt_b{n}")


def _email_changed(n: int, email: str, created: int) -> bytes:
    return stripe_event("customer.updated", {"id": "cus_order", "object": "customer", "email": email},
                        event_id=f"evt_order{n}", created=created)


def test_one_job_processes_a_burst_in_one_batch_and_withdraws_the_other_jobs(make_hub):
    hub = make_hub(HUB_INGEST_BATCH="50", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    ids = [_post(client, _payment_failed(n)) for n in range(12)]
    assert hub.relay.flush()
    ingest = jobs.queue(hub.redis, jobs.INGEST_QUEUE)
    assert ingest.count == 12

    pipeline.process(hub, ids[5])  # the job a worker took first (it left the queue then)

    assert {d.status for d in rows(hub, Delivery)} == {"processed"}
    # the eleven other jobs were withdrawn: no worker wakes up for nothing
    assert ingest.get_job_ids() == [jobs.delivery_job_id(ids[5], 1)]
    assert len(rows(hub, Event)) == 12 and len(rows(hub, Action)) == 12
    pipeline.process(hub, ids[0])  # a job that was already running elsewhere finds its delivery done
    assert len(rows(hub, Event)) == 12 and len(rows(hub, Action)) == 12


def test_a_batch_is_no_larger_than_the_setting(make_hub):
    hub = make_hub(HUB_INGEST_BATCH="4", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    ids = [_post(client, _payment_failed(n)) for n in range(10)]
    assert hub.relay.flush()

    pipeline.process(hub, ids[9])

    processed = sorted(d.id for d in rows(hub, Delivery) if d.status == "processed")
    assert processed == [ids[0], ids[1], ids[2], ids[9]]  # its own delivery and the oldest waiting ones
    waiting = jobs.queue(hub.redis, jobs.INGEST_QUEUE).get_job_ids()
    assert waiting == [jobs.delivery_job_id(i, 1) for i in ids[3:]]  # the lead's job is the worker's


def test_a_subscribers_deliveries_are_applied_in_arrival_order_whichever_job_takes_them(make_hub):
    hub = make_hub(HUB_INGEST_BATCH="50", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    created = int(time.time())  # the same provider time: only arrival order tells them apart
    first = _post(client, _email_changed(1, "first@example.com", created))
    last = _post(client, _email_changed(2, "second@example.com", created))

    pipeline.process(hub, last)  # the job of the later delivery runs first

    [subscriber] = rows(hub, Subscriber)
    assert subscriber.email == "second@example.com"
    assert {d.id: d.status for d in rows(hub, Delivery)} == {first: "processed", last: "processed"}


def test_a_delivery_we_cannot_read_fails_alone_and_the_rest_of_its_batch_commits(make_hub):
    hub = make_hub(HUB_INGEST_BATCH="50", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    good = _post(client, _payment_failed(1))
    bad_body = b'{"id": "evt_bad", "object": "event", "type": "invoice.payment_failed", "data": 7}'
    bad = _post(client, bad_body)
    also_good = _post(client, _payment_failed(2))

    pipeline.process(hub, good)

    status = {d.id: (d.status, d.error) for d in rows(hub, Delivery)}
    assert status[good][0] == status[also_good][0] == "processed"
    assert status[bad][0] == "failed" and status[bad][1]
    assert len(rows(hub, Action)) == 2


def test_a_job_whose_delivery_another_transaction_holds_waits_for_it_and_then_processes_it(make_hub):
    """The leftover transaction of a killed worker still holds the row: the re-run job does the
    other waiting work, then waits for the row instead of returning with it unprocessed."""
    hub = make_hub(HUB_INGEST_BATCH="50", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    held = _post(client, _payment_failed(1))
    other = _post(client, _payment_failed(2))
    done = threading.Event()
    with hub.store.engine.connect() as blocker:
        blocker.execute(text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE"), {"id": held})
        job = threading.Thread(target=lambda: (pipeline.process(hub, held), done.set()))
        job.start()
        deadline = time.monotonic() + 60
        while {d.id: d.status for d in rows(hub, Delivery)}[other] != "processed":
            assert time.monotonic() < deadline, "the job did not process the delivery nobody held"
            time.sleep(0.05)
        assert not done.is_set()  # still waiting for the held one
        blocker.rollback()
    job.join(60)
    assert done.is_set()
    assert {d.id: d.status for d in rows(hub, Delivery)} == {held: "processed", other: "processed"}


def test_two_workers_on_one_burst_process_every_delivery_once(make_hub):
    """Workers in parallel on overlapping batches (the same subscribers in both): every delivery
    processed, no event or action twice."""
    hub = make_hub(HUB_INGEST_BATCH="5", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    ids = []
    for n in range(30):
        ids.append(_post(client, _payment_failed(n % 6)  # six subscribers, each with five deliveries
                         .replace(b'"evt_b', f'"evt_{n}_b'.encode())))
    errors: list[BaseException] = []

    def work(mine: list[int]) -> None:
        try:
            for delivery_id in mine:
                pipeline.process(hub, delivery_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert {d.status for d in rows(hub, Delivery)} == {"processed"}
    assert len(rows(hub, Event)) == 30
    assert len(rows(hub, Subscriber)) == 6


def test_a_batch_that_meets_a_deadlock_is_rolled_back_and_run_again_whole(make_hub, monkeypatch):
    """Two batches that touch the same two subscribers in opposite orders can deadlock; PostgreSQL
    aborts one, and its job runs the batch again instead of failing."""
    from psycopg.errors import DeadlockDetected
    from sqlalchemy.exc import OperationalError

    from hub.tasks import process_delivery

    hub = make_hub(HUB_INGEST_BATCH="50", HUB_RULES_PATH=RULES)
    client = create_app(hub).test_client()
    ids = [_post(client, _payment_failed(n)) for n in range(3)]
    real, calls = pipeline.record_events, []

    def deadlocked_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the batch's second delivery, after the first was recorded
            raise OperationalError("UPDATE subscribers ...", {}, DeadlockDetected("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "record_events", deadlocked_once)
    process_delivery(ids[0])

    assert {d.status for d in rows(hub, Delivery)} == {"processed"}
    assert len(rows(hub, Event)) == 3 and len(rows(hub, Action)) == 3  # the first try left nothing behind
    assert len(calls) == 2 + 3
