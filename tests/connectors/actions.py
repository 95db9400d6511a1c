"""Helpers for the action tests: settings without the environment, running an action the way the
deliver worker does (schema load, connector client, run), and the shared status table."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import responses

import connectors
from connectors.base import ActionContext, ItemOutcome
from connectors.http import Outcome
from hub.config import load_settings
from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from hub.kernel.settings import Settings

KEY = "7d0f6a2e-3b1c-5e8f-9a4d-2c6b8e1f0a37"  # planned action keys are UUIDs

#: (status, extra response headers, error class) for every answer that is not a success
ERROR_CASES = [
    (400, {}, PermanentError),
    (401, {}, CredentialsError),
    (403, {}, CredentialsError),
    (404, {}, PermanentError),
    (409, {}, PermanentError),
    (422, {}, PermanentError),
    (429, {"Retry-After": "7"}, RetriableError),
    (500, {}, RetriableError),
    (503, {}, RetriableError),
]
TIMEOUT = requests.exceptions.ReadTimeout("read timed out")


class DictCache:
    """Stands in for the Redis id cache delivery installs on every client, shared between calls."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str, ttl: int = 0) -> None:
        self.data[key] = value


ID_CACHE = DictCache()  # replaced for every test by tests/connectors/conftest.py


def client(connector: Any, config: Settings) -> Any:
    api = connector.client(config)
    api.cache = ID_CACHE
    return api


def settings(**env: Any) -> Settings:
    return load_settings(environ={k: str(v) for k, v in env.items()}, dotenv_path=None)


def ctx(key: str = KEY, **subscriber: Any) -> ActionContext:
    return ActionContext(key=key, subscriber=subscriber)


def params(qualified: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters as the worker loads them (defaults filled, validated)."""
    found = connectors.action_spec(qualified)
    assert found is not None, qualified
    return found[1].schema().load(raw)


def run(qualified: str, raw: dict[str, Any], config: Settings, context: ActionContext | None = None) -> Outcome:
    found = connectors.action_spec(qualified)
    assert found is not None, qualified
    connector, spec = found
    return spec.run(client(connector, config), spec.schema().load(raw), context or ctx())


def run_batch(qualified: str, items: list[tuple[dict[str, Any], ActionContext]], config: Settings
              ) -> tuple[Outcome, list[ItemOutcome]]:
    found = connectors.action_spec(qualified)
    assert found is not None and found[1].batch is not None, qualified
    connector, spec = found
    assert spec.batch is not None
    loaded = [(spec.schema().load(p), c) for p, c in items]
    return spec.batch.run(client(connector, config), loaded)


def expect_classified(action: str, raw: dict[str, Any], config: Settings, *, status: int, error: type,
                      secret: str) -> None:
    """Run ``action`` against a mocked failure: the error says what to do next, keeps the status and
    Retry-After, and never shows the credential."""
    with pytest.raises(error) as caught:
        run(action, raw, config)
    assert type(caught.value) is error and caught.value.status == status
    if status == 429:
        assert caught.value.retry_after == 7.0
    assert secret not in str(caught.value)


class ActionContract:
    """What every action of a sending connector promises, whatever the vendor: each vendor answer maps
    to what to do next (done, retry later, failed, credentials invalid) without showing the
    credential, a timeout is retried later, and without credentials nothing is sent while the exact
    request is recorded. A connector's ``test_actions.py`` subclasses this (``Test<Name>Actions``)
    and names one call per action in ``cases``: ``(action, params, method, path of the first
    request)``."""

    connector: str
    config: dict[str, str]  # settings with credentials
    dry_config: dict[str, str]  # the same without credentials
    api: str
    secret: str
    cases: list[tuple[str, dict[str, Any], str, str]]
    error_body: Any = {"errors": [{"title": "m"}]}
    #: vendor-specific meaning of a status, where it differs from ERROR_CASES
    status_errors: dict[int, type] = {}

    def expected_error(self, action: str, status: int, error: type) -> type:
        return self.status_errors.get(status, error)

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.api}{path}"

    def context(self) -> ActionContext:
        return ctx(email="ann@example.com", external_ids={})

    def test_every_action_of_the_connector_has_a_case(self):
        assert {c[0] for c in self.cases} == {f"{self.connector}.{a}" for a in connectors.get(self.connector).actions}

    @pytest.mark.parametrize("status,headers,error", ERROR_CASES, ids=[str(c[0]) for c in ERROR_CASES])
    def test_answers_map_to_what_to_do_next(self, status, headers, error):
        for action, raw, method, path in self.cases:
            error = self.expected_error(action, status, error)
            with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
                mock.add(method, self.url(path), status=status, headers=headers, json=self.error_body)
                with pytest.raises(error) as caught:
                    run(action, raw, settings(**self.config), self.context())
            assert type(caught.value) is error and caught.value.status == status, action
            if status == 429:
                assert caught.value.retry_after == 7.0, action
            assert self.secret not in str(caught.value), action

    def test_a_timeout_is_retried_later(self):
        for action, raw, method, path in self.cases:
            with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
                mock.add(method, self.url(path), body=TIMEOUT)
                with pytest.raises(RetriableError, match="timed out"):
                    run(action, raw, settings(**self.config), self.context())

    def test_without_credentials_nothing_is_sent_and_the_request_is_recorded(self):
        for action, raw, method, path in self.cases:
            with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
                outcome = run(action, raw, settings(**self.dry_config), self.context())
                assert not mock.calls, action
            assert outcome.dry_run and outcome.request["url"].startswith("https://"), action
            assert self.secret not in str(outcome.request), action
