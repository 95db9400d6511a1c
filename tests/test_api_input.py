"""Bad admin API input gets a 400 naming the parameter and what is allowed, never a 500 (issue 13 row 7)."""

from __future__ import annotations

import pytest

AUTH = {"Authorization": "Bearer admin-test-token"}


@pytest.mark.parametrize("url, parameter, allowed", [
    ("/api/events?limit=abc", "limit", "integer"),
    ("/api/events?limit=1e3", "limit", "integer"),
    ("/api/events?limit=0", "limit", "between 1 and 1000"),
    ("/api/deliveries?limit=100000", "limit", "between 1 and 1000"),
    ("/api/events?since=garbage", "since", "RFC 3339"),
    ("/api/events?since=9999-99-99", "since", "RFC 3339"),
    ("/api/events?since=%00", "since", "RFC 3339"),
    ("/api/events?since=0001-01-01", "since", "between 1970-01-01 and 2100-01-01"),
    ("/api/events?subscriber=99999999999999999999", "subscriber", "between 1 and"),
    ("/api/subscribers/99999999999999999999", "key", "between 1 and"),
    ("/api/subscribers/1?timeline=abc", "timeline", "integer"),
    ("/api/metrics?from=0001-01-01&to=9999-12-31", "from", "between 1970-01-01"),
    ("/api/metrics?interval=day&from=1970-01-01", "from", "at most 400 periods"),
    ("/api/metrics?interval=hour", "interval", "day, week, month"),
    ("/api/metrics?from=2026-02-01&to=2026-01-01", "to", "not be before from"),
    ("/api/actions?status=bogus", "status", "scheduled"),
    ("/api/deliveries?connector=nope", "connector", "stripe"),
    ("/api/actions?attempts=maybe", "attempts", "boolean"),
    ("/api/events?typo=1", "typo", "Unknown field"),
    ("/api/events?until=last+tuesday", "until", "an age (7d, 12h, 30m) or an RFC 3339 time"),
    ("/api/deliveries?since=soon", "since", "an age (7d, 12h, 30m) or an RFC 3339 time"),
    ("/api/deliveries?until=2026-13-01", "until", "RFC 3339"),
    ("/api/actions?since=99999999999d", "since", "an age"),
    ("/api/actions?until=1800-01-01", "until", "between 1970-01-01 and 2100-01-01"),
])
def test_a_bad_query_parameter_is_a_400_naming_it(client, url, parameter, allowed):
    answer = client.get(url, headers=AUTH)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert parameter in answer.json["errors"]
    assert allowed in " ".join(answer.json["errors"][parameter])
    assert parameter in answer.json["message"]


@pytest.mark.parametrize("body, parameter, allowed", [
    ({"ids": ["x"]}, "ids", "integer"),
    ({"ids": [1.5]}, "ids", "integer"),
    ({"ids": [2**70]}, "ids", "between 1 and"),
    ({"ids": [-1]}, "ids", "between 1 and"),
    ({"ids": list(range(1, 1003))}, "ids", "1000"),
    ([1, 2, 3], "body", "JSON object"),
    ({"kind": "everything", "ids": [1]}, "kind", "actions, deliveries"),
    ({"kind": "actions"}, "ids", "give ids, or a status"),
    ({"kind": "deliveries", "status": "dead"}, "status", "failed only"),
])
def test_a_bad_replay_body_is_a_400_naming_the_field(client, body, parameter, allowed):
    answer = client.post("/api/replay", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert allowed in " ".join(answer.json["errors"][parameter])


def test_a_replay_body_that_is_not_json_is_a_400(client):
    answer = client.post("/api/replay", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400 and "body" in answer.json["errors"]


def test_a_day_by_day_report_over_a_year_is_still_answered(client):
    answer = client.get("/api/metrics?interval=day&from=2025-01-01&to=2025-12-31", headers=AUTH)
    assert answer.status_code == 200
    assert (answer.json["from"], answer.json["to"], answer.json["interval"]) == ("2025-01-01", "2025-12-31", "day")


def test_good_parameters_still_filter(client):
    assert client.get("/api/events?since=2026-01-01&limit=5&type=payment.*", headers=AUTH).status_code == 200
    assert client.get("/api/actions?attempts=1&status=dead", headers=AUTH).json == []
    assert client.get("/api/subscribers/nobody@example.com", headers=AUTH).status_code == 404


def test_the_openapi_description_names_every_parameter(client):
    spec = client.get("/api/openapi.json", headers=AUTH).json
    assert spec["openapi"] == "3.1.0"
    events = spec["paths"]["/api/events"]["get"]
    limit = next(p for p in events["parameters"] if p["name"] == "limit")
    assert limit["in"] == "query" and limit["schema"]["maximum"] == 1000
    assert set(spec["paths"]) >= {"/api/events", "/api/deliveries", "/api/actions", "/api/replay",
                                  "/api/subscribers/{key}", "/api/metrics"}
    assert "requestBody" in spec["paths"]["/api/replay"]["post"]
