"""The outbound HTTP client every connector's ``client.py`` builds on.

- timeouts on every call; tenacity retries connection errors (only) a few times in-call;
- responses classified by what to do next (``classify``): 2xx ok; 408/425/429/5xx retriable,
  honouring ``Retry-After`` as seconds or an HTTP date; 401/403 credentials; other 4xx permanent;
- dry run: with no credentials the exact request is recorded and nothing is sent;
- what is recorded (request and response) has secrets masked and bodies trimmed.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from hub.kernel.errors import CredentialsError, PermanentError, RetriableError
from hub.kernel.values import parse_time

log = logging.getLogger(__name__)

TRIM = 2000
ID_TTL = 86400  # how long a provider id looked up by e-mail is cached
SENSITIVE_HEADERS = frozenset({"authorization", "api-token", "x-api-key", "proxy-authorization",
                               "x-shopify-access-token"})
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


@dataclass
class Outcome:
    """A finished call: what was sent and what came back (both safe to store)."""

    status_code: int | None
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    dry_run: bool = False
    data: Any = None  # parsed response body, for callers that need ids from it
    extra: dict[str, Any] = field(default_factory=dict)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: an integer, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def _trim(text: str) -> str:
    return text if len(text) <= TRIM else text[:TRIM] + f"... ({len(text)} chars)"


def _safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def _safe_body(body: Any, secret_fields: frozenset[str]) -> Any:
    if secret_fields and isinstance(body, Mapping):
        return {k: ("***" if k in secret_fields else v) for k, v in body.items()}
    return body


class Cache:
    """A small shared key-value cache for provider ids (tag ids, record ids).

    Delivery gives every client a Redis-backed one (``hub.outbound.deliver.RedisCache``) so all workers share
    it; this in-process default serves tests and one-off calls. Keys must not contain secrets.
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def set(self, key: str, value: str, ttl: int = 86400) -> None:
        self._data[key] = value


def _body_text(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body) if len(body) <= TRIM else _trim(body)
        except ValueError:
            return _trim(body)
    return body


def _whole_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PermanentError(f"{response.url} answered a body that is not JSON", status=response.status_code) from exc


def classify(response: requests.Response, summary: dict[str, Any]) -> None:
    """Raise the error that says what to do with a non-2xx response."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = _body_text(response.text)
    detail = {"status": status, "body": body}
    if status in RETRIABLE_STATUSES:
        raise RetriableError(f"{summary['method']} {summary['url']} answered {status}", status=status,
                             response=detail, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if status in (401, 403):
        raise CredentialsError(f"{summary['method']} {summary['url']} refused the credentials", status=status,
                               response=detail)
    raise PermanentError(f"{summary['method']} {summary['url']} answered {status}", status=status, response=detail)


class ApiClient:
    """A small requests-based client with a base URL, default headers and dry-run mode."""

    connector: str = ""
    #: form/JSON top-level fields whose values are secrets: masked in the recorded request
    secret_fields: frozenset[str] = frozenset()

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None, *, dry_run: bool = False,
                 timeout: float = 10.0, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.dry_run = dry_run
        self.timeout = timeout
        self.session = session or requests.Session()
        #: shared id cache (interface: get(key), set(key, value, ttl)); delivery installs a Redis one
        self.cache: Any = Cache()
        #: called before every real request; delivery installs one that takes a rate-limit token for
        #: each request after an action's first (lookups count against the vendor limit too) and
        #: raises hub.outbound.ratelimit.Throttled when the action must wait
        self.throttle: Callable[[], None] | None = None

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, json_body: Any = None, form: Any = None,
                headers: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
                allow_redirects: bool = False, whole: bool = False) -> Outcome:
        """Send (or, in dry run, record) one request; raise a classified ActionError on failure.

        ``data`` is the parsed body, trimmed like the recorded response unless ``whole`` (pages read
        by a backfill)."""
        url = self.url(path)
        all_headers = {**self.headers, **(headers or {})}
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        summary = {"method": method, "url": url, "headers": _safe_headers(all_headers),
                   "params": dict(params) if params else None,
                   "body": _safe_body(json_body if json_body is not None else form, self.secret_fields)}
        summary = {k: v for k, v in summary.items() if v is not None}
        if self.dry_run:
            return Outcome(status_code=None, request=summary, dry_run=True)
        data = json.dumps(json_body, separators=(",", ":")) if json_body is not None else form
        if self.throttle is not None:
            self.throttle()
        try:
            response = self._send(method, url, data=data, headers=all_headers, params=params,
                                  allow_redirects=allow_redirects)
        except requests.Timeout as exc:
            raise RetriableError(f"{method} {url} timed out after {self.timeout}s") from exc
        except requests.ConnectionError as exc:
            raise RetriableError(f"{method} {url} could not connect: {type(exc).__name__}") from exc
        classify(response, summary)
        parsed = _body_text(response.text) if response.content else None
        data = _whole_json(response) if whole and response.content else parsed
        return Outcome(status_code=response.status_code, request=summary,
                       response={"status": response.status_code, "body": parsed}, data=data)

    @retry(retry=retry_if_exception_type(requests.ConnectionError), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.2, max=1.0), reraise=True)
    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        # Only connection errors are retried in-call (the request never reached the server);
        # everything longer goes back to the outbox schedule.
        return self.session.request(method, url, timeout=self.timeout, **kwargs)


class LocalCache:
    """This process's id cache, for clients without a shared one (bounded; same interface)."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        return self._items.get(key)

    def set(self, key: str, value: str, ttl: int = ID_TTL) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def form_value(value: Any) -> str:
    """A form-encoded value as the billing APIs expect it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def unix_seconds(value: Any) -> int | None:
    """A unix timestamp from an int or an ISO-8601 string."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or str(value).isdigit():
        return int(value)
    return int(parse_time(value).timestamp())
