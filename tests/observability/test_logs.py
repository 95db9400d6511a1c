"""Structured logs: HUB_LOG_FORMAT=json gives one JSON object per line with the ids of the work at hand;
secrets never appear, in the message or in a traceback."""

from __future__ import annotations

import io
import json
import logging

import pytest

from hub import logs
from hub.config import load_settings
from hub.kernel.settings import SecretScrubber
from hub.store import Delivery, utcnow

SECRET = "whsec_supersecret"


@pytest.fixture
def captured(make_hub):
    """A root handler like ``configure_logging`` installs, writing JSON into a buffer."""
    make_hub(HUB_STRIPE_WEBHOOK_SECRET=SECRET)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs.ScrubSecrets())
    root = logging.getLogger()
    root.addHandler(handler)
    yield out
    root.removeHandler(handler)


def _lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_logs_are_one_object_per_line_with_the_ids_and_no_secret_even_in_a_traceback(captured):
    log = logging.getLogger("hub.test")
    with logs.context(delivery_id=7, subscriber_id=3):
        try:
            raise RuntimeError(f"could not verify with {SECRET!r}")
        except RuntimeError:
            log.exception("verification blew up for %s", SECRET)
    log.warning("outside any job")
    first, second = _lines(captured)
    assert first["level"] == "ERROR" and first["logger"] == "hub.test"
    assert first["delivery_id"] == 7 and first["subscriber_id"] == 3
    assert "Traceback" in first["exc"] and "RuntimeError" in first["exc"]
    assert "supersecret" not in captured.getvalue()
    assert "delivery_id" not in second


def test_text_logs_scrub_the_traceback_too(make_hub):
    make_hub(HUB_STRIPE_WEBHOOK_SECRET=SECRET)
    record = logging.LogRecord("hub.x", logging.ERROR, __file__, 1, "failed", (), None)
    try:
        raise ValueError(f"secret is {SECRET}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    text = logs.formatter("text").format(record)
    assert "ValueError: secret is ***" in text and "supersecret" not in text


def test_an_ingest_job_logs_with_its_delivery_id(hub, captured):
    from hub.tasks import process_delivery

    now = utcnow()
    delivery_id = hub.store.insert_one(Delivery.__table__, {
        "connector": "stripe", "dedup_key": "evt_unreadable", "headers": {}, "body": b"not json",
        "received_at": now, "status": "received", "attempts": 0, "enqueued": 1, "enqueued_at": now,
        "event_count": 0}, ["connector", "dedup_key"])
    process_delivery(delivery_id)
    [line] = [line for line in _lines(captured) if line["logger"] == "hub.ingest.pipeline"]
    assert line["delivery_id"] == delivery_id and "failed" in line["message"]


def test_a_url_password_is_scrubbed_on_its_own_and_as_shown_in_a_repr():
    settings = load_settings(environ={"HUB_DATABASE_URL": "postgresql://hub:pa%2Fss'word@db/hub"})
    scrub = SecretScrubber(settings)
    assert scrub("FATAL: password pa/ss'word rejected") == "FATAL: password *** rejected"
    assert "ss" not in scrub(repr("pa/ss'word"))


def test_log_format_must_be_text_or_json():
    from hub.kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="HUB_LOG_FORMAT"):
        load_settings(environ={"HUB_LOG_FORMAT": "xml"})


def test_what_a_job_logs_after_recording_an_event_names_the_event_and_subscriber(hub, client, captured,
                                                                                   monkeypatch):
    import hub.ingest.pipeline as pipeline
    from hub.tasks import process_delivery
    from tests.conftest import FIXTURES
    from tests.helpers import stripe_headers

    body = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()
    delivery_id = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body)).json["delivery"]
    real = pipeline.goals.track

    def track(session, event, subscriber_id):  # something logged inside the job, after the event was recorded
        logging.getLogger("hub.test").warning("tracking goals of %s", event.type)
        return real(session, event, subscriber_id)

    monkeypatch.setattr(pipeline.goals, "track", track)
    process_delivery(delivery_id)
    [line] = [line for line in _lines(captured) if line["logger"] == "hub.test"]
    assert line["delivery_id"] == delivery_id and line["event_id"] and line["subscriber_id"]
    logging.getLogger("hub.test").warning("after the job")
    assert "event_id" not in _lines(captured)[-1]
