"""The circuit breaker and credentials mark on real Redis."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib

from hub.outbound.circuit import Circuit, Credentials


@pytest.fixture
def redis(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    for key in client.scan_iter("test-circuit:*"):
        client.delete(key)
    yield client
    client.close()


def test_opens_after_consecutive_failures_then_lets_one_probe_through(redis):
    circuit = Circuit(redis, prefix="test-circuit")
    assert circuit.failure("dest", 3, 0.3) == "closed"
    assert circuit.failure("dest", 3, 0.3) == "closed"
    assert circuit.failure("dest", 3, 0.3) == "open"
    gate = circuit.allow("dest")
    assert not gate.allowed and 0 < gate.wait <= 0.3
    assert circuit.state("dest")["state"] == "open"
    time.sleep(0.35)
    probe = circuit.allow("dest")
    assert probe.allowed and probe.probe
    assert not circuit.allow("dest").allowed  # only one probe at a time
    circuit.success("dest")
    assert circuit.allow("dest").allowed and circuit.state("dest") == {"state": "closed", "failures": 0}


def test_a_failed_probe_opens_it_again(redis):
    circuit = Circuit(redis, prefix="test-circuit")
    for _ in range(2):
        circuit.failure("dest", 2, 0.2)
    time.sleep(0.25)
    assert circuit.allow("dest").probe
    assert circuit.failure("dest", 2, 5.0) == "open"
    assert not circuit.allow("dest").allowed


def test_a_success_resets_the_count(redis):
    circuit = Circuit(redis, prefix="test-circuit")
    circuit.failure("dest", 3, 1)
    circuit.failure("dest", 3, 1)
    circuit.success("dest")
    assert circuit.failure("dest", 3, 1) == "closed"


def test_credentials_mark(redis):
    credentials = Credentials(redis, prefix="test-circuit:cred")
    assert credentials.invalid("ac") is None
    credentials.mark_invalid("ac", 401, "refused")
    assert credentials.invalid("ac")["status"] == 401
    credentials.clear("ac")
    assert credentials.invalid("ac") is None
