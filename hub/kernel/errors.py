"""Errors, grouped by what the caller should do next.

- ConfigError: an operator must change a setting. Kept outside HubError so it is never
  swallowed by code that handles runtime failures.
- VerificationError: the request is not from who it claims (answer 401, store nothing).
- PayloadError: a verified payload we cannot normalize (store, flag, allow replay).
- ActionError and its subclasses: the outcome of an outbound call, by what to do next:
  RetriableError (try again later, maybe after ``retry_after``), PermanentError (do not retry),
  CredentialsError (permanent, and the connector's credentials are marked invalid).
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """One or more settings are missing or invalid. ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}"


class HubError(Exception):
    """Root of the runtime errors."""


class VerificationError(HubError):
    """The webhook failed authentication. The message is for logs only; clients get a bare 401."""


class PayloadError(HubError):
    """A verified delivery whose payload cannot be normalized."""


class ActionError(HubError):
    """An outbound action failed. Carries enough context to record the attempt."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        response: Any = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.response = response
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (HTTP {self.status})" if self.status else text


class RetriableError(ActionError):
    """Timeout, connection error, 5xx or 429: try again later."""

    retriable = True


class PermanentError(ActionError):
    """A 4xx or invalid parameters: retrying will not help."""


class CredentialsError(PermanentError):
    """401/403: the connector's credentials are wrong or lack a scope."""
