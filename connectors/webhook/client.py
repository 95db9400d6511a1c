"""``webhook.post``: a JSON payload (typically the canonical event, ``payload: "{{ event }}"``)
POSTed to a merchant's endpoint, signed per Standard Webhooks (``signature.py``) and sent through
the SSRF guard (``guard.py``): the host is resolved and checked once, the connection goes to that
address, redirects are refused.

``webhook-id`` (and ``Idempotency-Key``) is the planned action's key, the same on every retry, so the
receiver can drop repeats; ``webhook-timestamp`` and the signatures are fresh on each attempt.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests
from marshmallow import Schema, ValidationError, fields, validates

from connectors.base import ActionContext, ActionSpec, OnRepeat
from connectors.http import ApiClient, Outcome
from connectors.webhook import guard, signature
from hub.kernel.errors import PermanentError
from hub.kernel.settings import Settings


class WebhookClient(ApiClient):
    connector = "webhook"

    def __init__(self, secrets: list[str], *, allow_http: bool = False, allow_hosts: list[str] | None = None,
                 dry_run: bool = False, timeout: float = 10.0):
        super().__init__("", {"Content-Type": "application/json", "User-Agent": "subscriber-hub-webhooks"},
                         dry_run=dry_run, timeout=timeout)
        self.secrets = list(secrets)
        self.allow_http = allow_http
        self.allow_hosts = list(allow_hosts or [])
        self._target: guard.Target | None = None  # set by post() for _send
        for secret in self.secrets:
            try:
                signature.secret_key(secret)
            except signature.SecretError as exc:
                raise PermanentError(f"HUB_WEBHOOK_SECRET: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "WebhookClient":
        return cls(settings["HUB_WEBHOOK_SECRET"] or [], allow_http=bool(settings["HUB_WEBHOOK_ALLOW_HTTP"]),
                   allow_hosts=settings["HUB_WEBHOOK_ALLOW_HOSTS"] or [], dry_run=dry_run,
                   timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])

    def post(self, url: str, payload: Any, msg_id: str, timestamp: int | None = None) -> Outcome:
        target = guard.resolve(url, allow_http=self.allow_http, allow_hosts=self.allow_hosts)
        # ASCII-only JSON: the exact bytes signed are the bytes sent
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
        ts = int(time.time()) if timestamp is None else timestamp
        headers = ({**signature.sign(body.encode(), msg_id, self.secrets, ts)} if self.secrets else
                   {"webhook-id": msg_id, "webhook-timestamp": str(ts)})
        headers["Idempotency-Key"] = msg_id  # the IETF header, for receivers that dedupe on it rather than webhook-id
        self._target = target
        return self.request("POST", url, form=body, headers=headers)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        # One session per call, pinned to the checked address; no proxies from the environment
        # (a proxy would resolve the name again) and never a redirect. No in-call retries either:
        # a merchant endpoint that drops connections is retried by the outbox schedule.
        target = self._target
        assert target is not None, "use post(), which checks the URL first"
        session = requests.Session()
        session.trust_env = False
        adapter = guard.PinnedAdapter(target)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        headers = {**kwargs.pop("headers", {}), "Host": target.host_header}
        kwargs["allow_redirects"] = False
        try:
            response = session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        finally:
            session.close()
        if response.is_redirect or 300 <= response.status_code < 400:
            location = guard._safe(response.headers.get("Location") or "") if response.headers.get("Location") \
                else "nowhere"
            raise PermanentError(f"POST {guard._safe(url)} answered {response.status_code} redirecting to "
                                 f"{location}: redirects are not followed (SSRF guard)", status=response.status_code)
        return response


class PostParams(Schema):
    url = fields.String(required=True)
    payload = fields.Raw(required=True)  # any JSON value; the canonical event with "{{ event }}"

    @validates("url")
    def _url(self, value: str, **_: Any) -> None:
        if not value.lower().startswith(("https://", "http://")):
            raise ValidationError("must be an https:// URL")


def post(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """Sign and POST ``payload`` to ``url`` (``webhook-id`` = the action key)."""
    assert isinstance(client, WebhookClient), "webhook.post needs the webhook client"
    return client.post(params["url"], params["payload"], ctx.key)


ACTIONS: dict[str, ActionSpec] = {
    "post": ActionSpec("post", PostParams, post,
                       "POST a signed JSON payload (Standard Webhooks) to a merchant's https endpoint.",
                       on_repeat=OnRepeat(
                           "single for a receiver that drops repeated ids", "`webhook-id` and `Idempotency-Key` = "
                           "the action key on every try, and the same payload: a receiver that remembers the ids "
                           "it processed, as Standard Webhooks asks, sees one message (nothing to look up: the "
                           "hub cannot ask a merchant's endpoint what it received)")),
}
