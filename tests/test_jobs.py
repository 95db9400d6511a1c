"""hub/jobs.py against real Redis: queue groups, worker liveness, fair serving of the queues."""

from __future__ import annotations

from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from hub import jobs


def note(label: str) -> None:
    """A job function: appends its label to a Redis list (the order jobs ran in)."""
    from hub.runtime import current

    current().redis.rpush("test:ran", label)


def test_queue_groups_name_the_ingest_and_every_deliver_queue():
    assert jobs.queue_names(["ingest"], ["klaviyo", "hubspot"]) == ["ingest"]
    assert jobs.queue_names(["deliver"], ["klaviyo", "hubspot"]) == ["deliver-klaviyo", "deliver-hubspot"]
    assert jobs.queue_names([], ["klaviyo"]) == ["ingest", "deliver-klaviyo"]
    assert jobs.queue_names(["deliver-klaviyo", "deliver"], ["klaviyo"]) == ["deliver-klaviyo"]


def test_a_started_job_is_alive_only_while_its_worker_beats(hub):
    job = Job.create("hub.tasks.process_delivery", args=(1,), id="d1-1", connection=hub.redis,
                     serializer=JSONSerializer)
    job.worker_name = "w-gone"
    job.save()
    job.set_status(JobStatus.STARTED)
    assert not jobs.job_alive(hub.redis, "d1-1")  # a SIGKILLed worker: started, nobody beating
    beat = jobs.Heartbeat(hub.redis, "w-gone").start()
    try:
        assert jobs.job_alive(hub.redis, "d1-1")
    finally:
        beat.close()
    assert not jobs.job_alive(hub.redis, "d1-1")  # a worker that stops cleanly takes its lease away


def test_job_ids_read_back_as_what_they_stand_for():
    assert jobs.parse_job_id(jobs.delivery_job_id(12, 3)) == ("delivery", 12, 3)
    assert jobs.parse_job_id(jobs.action_job_id(7, 1)) == ("action", 7, 1)
    assert jobs.parse_job_id("something-else") is None


def test_a_deliver_job_runs_before_a_backlog_of_ingest_jobs_ahead_of_it(hub):
    ingest, deliver = jobs.queue(hub.redis, "ingest"), jobs.queue(hub.redis, "deliver-fake")
    for n in range(3):
        ingest.enqueue("tests.test_jobs.note", f"ingest-{n}")
    deliver.enqueue("tests.test_jobs.note", "deliver")
    jobs.make_worker(hub.redis, ["ingest", "deliver-fake"]).work(burst=True)
    ran = [x.decode() for x in hub.redis.lrange("test:ran", 0, -1)]
    assert sorted(ran) == ["deliver", "ingest-0", "ingest-1", "ingest-2"]
    assert ran.index("deliver") == 1  # served round robin, not after every ingest job
