"""The running admin API against its own OpenAPI description (schemathesis): whatever parameters and
bodies are generated from the description, no answer is a 5xx, every status code is documented and
every JSON answer matches its schema."""

from __future__ import annotations

import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from tests.conftest import FIXTURES
from tests.helpers import drain, stripe_headers

AUTH = {"Authorization": "Bearer admin-test-token"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def live_api(hub):
    """The hub's web app on a real port, with a processed webhook so the listings are not empty."""
    from hub.web import create_app

    app = create_app(hub)
    body = (FIXTURES / "stripe" / "invoice.payment_failed.json").read_bytes()
    app.test_client().post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    drain(hub)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    yield schemathesis.openapi.from_url(f"{base}/api/openapi.json", headers=AUTH)
    server.shutdown()
    thread.join(5)


def test_the_api_answers_as_its_openapi_description_says(live_api):
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in live_api.get_all_operations()}
    assert "POST /api/replay" in operations and "GET /api/subscribers/{key}" in operations

    # valid requests (answered 2xx or a documented 4xx) and invalid ones (a 400, never a 5xx)
    @given(case=st.one_of(live_api.as_strategy(GenerationMode.POSITIVE),
                          live_api.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def call(case):
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    call()
