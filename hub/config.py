"""Settings from ``HUB_*`` environment variables (and ``.env`` in development).

Every setting is declared once, with its default, type and whether it is a secret. The same
declarations validate the environment at start (one error naming every problem), render the
README's configuration table (``hub config --markdown``) and tell the log scrubber which values
must never be printed. Connectors declare their own settings next to their code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from dotenv import dotenv_values

from hub.kernel.errors import ConfigError
from hub.kernel.paths import DEFAULT_MAPPINGS_PATH, DEFAULT_RULES_PATH
from hub.kernel.settings import Setting, Settings, validate_values

CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("HUB_ENV", "`development` (embedded defaults allowed) or `production` (database, Redis and "
            "admin token required).", "development"),
    Setting("HUB_DATABASE_URL", "SQLAlchemy URL of the database. Unset: a SQLite file at `./var/hub.db`.",
            None, secret=True),
    Setting("HUB_REDIS_URL", "Redis URL for the RQ queues and rate limits. Unset: an in-process queue "
            "(fakeredis) with worker and scheduler threads.", None, secret=True),
    Setting("HUB_ADMIN_TOKEN", "Bearer token for `/api/*`. Unset in development: the API answers loopback "
            "clients only.", None, secret=True),
    Setting("HUB_PUBLIC_URL", "Externally visible base URL (used where a provider signs the URL, e.g. HubSpot v3).",
            None, kind="url"),
    Setting("HUB_CONNECTORS", "Inbound connectors that must be configured (start-up fails naming any missing "
            "secret). Unset: every connector whose secret is set.", None, kind="list"),
    Setting("HUB_MAX_BODY_BYTES", "Largest webhook body accepted; larger gets 413.", 1048576, kind="int"),
    Setting("HUB_SERVE_REQUEST_TIMEOUT_SECONDS", "`hub serve`: a connection still sending one request's headers "
            "and body after this long is closed (slow clients); idle keep-alive connections close after it too.",
            30.0, kind="float"),
    Setting("HUB_SERVE_MAX_CONNECTIONS", "`hub serve`: open connections per worker process at most (more wait in the listen "
            "backlog); slow clients cost a connection, never an app thread.", 1000, kind="int"),
    Setting("HUB_RULES_ENV", "Further environment variables rules may read as `${NAME}` (comma-separated); "
            "`HUB_RULES_*` and `HUB_PLAYBOOK_*` are always readable, secret settings never.", None, kind="list"),
    Setting("HUB_RULES_PATH", "Rules files or folders (comma-separated). Unset: the default playbook shipped "
            "with the hub (`rules/` of the source tree, `hub/defaults/rules` in an installed wheel).",
            [str(DEFAULT_RULES_PATH)], kind="list"),
    Setting("HUB_MAPPINGS_PATH", "Folder of provider mapping tables (`<connector>.yaml`). Unset: the tables "
            "shipped with the hub (`mappings/` of the source tree, `hub/defaults/mappings` in a wheel).",
            str(DEFAULT_MAPPINGS_PATH)),
    Setting("HUB_DEFAULT_TIMEZONE", "The merchant's time zone (IANA name): local send times for subscribers whose "
            "zone is unknown (docs/timezones.md).", "UTC", kind="timezone"),
    Setting("HUB_RETRY_MAX_ATTEMPTS", "Delivery attempts before an action is dead-lettered.", 20, kind="int"),
    Setting("HUB_RETRY_BASE_SECONDS", "First retry delay; doubles each attempt (with jitter).", 30.0, kind="float"),
    Setting("HUB_RETRY_MAX_SECONDS", "Longest single retry delay (with the defaults the last of 20 attempts comes about two days "
            "after the first).", 21600.0,
            kind="float"),
    Setting("HUB_LEASE_SECONDS", "How long a worker owns an action it is sending; after that the sweeper "
            "takes it back.", 60, kind="int"),
    Setting("HUB_STRANDED_AFTER_SECONDS", "Age after which queued work with no live job is re-enqueued.", 60,
            kind="int"),
    Setting("HUB_INGEST_BATCH", "Received webhooks an ingest job processes in one transaction (a burst "
            "costs one job and one commit per batch; 1 processes them one by one).", 20, kind="int"),
    Setting("HUB_SWEEP_INTERVAL_SECONDS", "How often the scheduler sweeps for stranded work.", 30, kind="int"),
    Setting("HUB_SCHEDULER_INTERVAL_SECONDS", "How often the scheduler moves due actions to the queues.", 1.0,
            kind="float"),
    Setting("HUB_ALLOW_INSECURE_API_URLS", "With HUB_ENV=production, allow `*_API_URL` settings that are "
            "`http://` or name a loopback, private or link-local address (a proxy or test double on your own "
            "network).", False, kind="bool"),
    Setting("HUB_HTTP_TIMEOUT_SECONDS", "Connect and read timeout of every outbound call.", 10.0, kind="float"),
    Setting("HUB_LOG_LEVEL", "Python log level.", "INFO"),
    Setting("HUB_LOG_FORMAT", "`text` (one readable line per record) or `json` (one JSON object per line, with "
            "the delivery, event, action and subscriber ids where known).", "text", group="observability"),
    Setting("HUB_ALERT_INTERVAL_SECONDS", "How often the scheduler evaluates the alerts (`alerts:` in the rules "
            "files; 0: never).", 60, kind="int", group="observability"),
    Setting("HUB_METRICS_TOKEN", "Bearer token for `/metrics` and for the details of `/readyz` (`/healthz` stays "
            "open). Unset: open in development, loopback clients only in production.", None, secret=True,
            group="observability"),
    Setting("HUB_REPORTING_CURRENCY", "Currency KPIs and loyalty points are stated in (amounts converted with "
            "HUB_FX_RATES). Unset: KPIs per currency.", None, group="metrics"),
    Setting("HUB_FX_RATES", "Value of one unit of each currency in the reporting currency, e.g. "
            "`EUR=1.08,GBP=1.27`.", None, kind="list", group="metrics"),
    Setting("HUB_SEGMENT_SWEEP_SECONDS", "How often the scheduler re-evaluates every subscriber's segments for "
            "time-based transitions (0: never).", 3600, kind="int", group="segments"),
    Setting("HUB_SELF_SERVICE_SECRET", "Key that signs self-service links (`POST /api/subscriptions/<id>/"
            "self-service-links`). Unset: no links are issued.", None, secret=True, group="changes"),
    Setting("HUB_BACKFILL_HORIZON_HOURS", "Backfilled or repaired events older than this are recorded, but the "
            "actions the rules plan for them are skipped, never sent (docs/backfill.md).", 24, kind="int",
            group="sync"),
    Setting("HUB_SYNC_HEALTH_SECONDS", "How often the scheduler checks the registered webhook subscriptions and "
            "fetches events the webhooks missed (0: never).", 900, kind="int", group="sync"),
    Setting("HUB_SYNC_LOOKBACK_HOURS", "How far back the health check compares the provider's events with what "
            "arrived.", 72, kind="int", group="sync"),
    Setting("HUB_SECRETS_FILE", "File (dotenv format, mode 0600) where `hub connectors register` stores the "
            "signing secrets providers return; read for any variable the environment does not set.",
            "var/secrets.env", group="sync"),
)


def declared_settings() -> list[Setting]:
    """Core settings followed by every registered connector's settings."""
    from connectors import REGISTRY

    out = list(CORE_SETTINGS)
    for connector in REGISTRY.values():
        out.extend(connector.settings)
    return out


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    dotenv_path: str | os.PathLike[str] | None = ".env",
) -> Settings:
    """Read, convert and check every declared setting; raise one ConfigError listing all problems."""
    env: dict[str, Any] = {}
    if dotenv_path and Path(dotenv_path).is_file() and environ is None:
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    env.update(overrides or {})
    # secrets stored by `hub connectors register`: the default file is read only with the real
    # environment (tests pass theirs explicitly); a variable the environment sets wins
    secrets_file = env.get("HUB_SECRETS_FILE") or ("var/secrets.env" if environ is None else None)
    if secrets_file and Path(secrets_file).is_file():
        env.update({k: v for k, v in dotenv_values(secrets_file).items() if v is not None and not env.get(k)})

    settings, problems = validate_values({s.name: s for s in declared_settings()}, env)
    problems.extend(_missing(settings))
    problems.extend(_invalid(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _missing(settings: Settings) -> Iterable[str]:
    if settings["HUB_LOG_FORMAT"] not in ("text", "json"):
        yield "HUB_LOG_FORMAT: must be text or json"
    if settings.production:
        for name in ("HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_ADMIN_TOKEN"):
            if not settings[name]:
                yield f"{name}: required when HUB_ENV=production"
        if not settings["HUB_ALLOW_INSECURE_API_URLS"]:
            for name in sorted(n for n in settings.declared if n.endswith("_API_URL")):
                problem = _insecure_api_url(settings[name])
                if problem:
                    yield f"{name}: {problem} (HUB_ENV=production; set HUB_ALLOW_INSECURE_API_URLS=true if intended)"
    from connectors import REGISTRY

    for name in settings["HUB_CONNECTORS"] or []:
        connector = REGISTRY.get(name)
        if connector is None:
            yield f"HUB_CONNECTORS: unknown connector {name!r} (known: {', '.join(sorted(REGISTRY))})"
            continue
        for var in connector.missing_inbound_settings(settings):
            yield f"{var}: required because HUB_CONNECTORS lists {name!r}"


def _insecure_api_url(url: str | None) -> str | None:
    """Why an outbound API base URL is unsafe in production: plain http (credentials in clear), or a
    host that is a loopback, private, link-local or metadata address (the hub's API keys sent
    inside the network). Host names are not resolved here; literal addresses in any IPv4 spelling
    (``2130706433``, ``0177.0.0.1``) and ``localhost`` names are."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    from connectors.webhook.guard import blocked_reason

    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return f"{parts.scheme or 'no'}:// URL refused: API credentials travel only over https"
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"host {host} is loopback"
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the legacy IPv4 spellings inet_aton accepts: 127.1, 0x7f000001, 2130706433, 0177.0.0.1
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # a name: the connector's calls go where DNS says
    reason = blocked_reason(ip)
    return f"host {host} is a {reason} address" if reason else None
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Tokens that are someone's example, not a secret (compared lower-case, ignoring - and _).
PLACEHOLDER_TOKENS = {"changeme", "change", "secret", "password", "token", "admin", "admintoken", "test", "default",
                      "example", "replaceme", "xxx", "todo", "hub", "letmein", "yoursecret", "yourtoken", "mytoken"}
MIN_ADMIN_TOKEN = 32


def _invalid(settings: Settings) -> Iterable[str]:
    """Values that parse but cannot work: each one named, none of them echoed if secret."""
    if settings["HUB_ENV"] not in ("development", "production"):
        yield "HUB_ENV: must be development or production"
    if str(settings["HUB_LOG_LEVEL"]).upper() not in LOG_LEVELS:
        yield f"HUB_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}"
    for problem in fx_rate_problems(settings["HUB_FX_RATES"] or []):
        yield f"HUB_FX_RATES: {problem}"
    currency = settings["HUB_REPORTING_CURRENCY"]
    if currency and not re.fullmatch(r"[A-Za-z]{3}", currency):
        yield "HUB_REPORTING_CURRENCY: must be a three-letter currency code such as USD"
    if settings["HUB_DATABASE_URL"] and not re.match(r"^[a-z][a-z0-9+]*://", settings["HUB_DATABASE_URL"]):
        yield "HUB_DATABASE_URL: must be a database URL such as postgresql+psycopg://user@host/db"
    if settings["HUB_REDIS_URL"] and not re.match(r"^(redis|rediss|unix)://", settings["HUB_REDIS_URL"]):
        yield "HUB_REDIS_URL: must be a Redis URL such as redis://host:6379/0"
    for name in ("HUB_MAX_BODY_BYTES", "HUB_RETRY_MAX_ATTEMPTS", "HUB_LEASE_SECONDS", "HUB_HTTP_TIMEOUT_SECONDS",
                 "HUB_SCHEDULER_INTERVAL_SECONDS", "HUB_INGEST_BATCH"):
        if settings[name] is not None and settings[name] <= 0:
            yield f"{name}: must be greater than 0"
    token = settings["HUB_ADMIN_TOKEN"]
    if token and settings.production:
        if re.sub(r"[-_\s]", "", token.lower()) in {t.lower() for t in PLACEHOLDER_TOKENS}:
            yield "HUB_ADMIN_TOKEN: a placeholder, not a secret (generate one: `openssl rand -hex 32`)"
        elif len(token) < MIN_ADMIN_TOKEN:
            yield (f"HUB_ADMIN_TOKEN: too short for production ({MIN_ADMIN_TOKEN} characters at least; "
                   "`openssl rand -hex 32`)")


def fx_rate_problems(pairs: Iterable[str]) -> list[str]:
    """``EUR=1.08``: a currency code and a positive number, each pair."""
    problems = []
    for pair in pairs:
        code, sep, rate = pair.partition("=")
        try:
            ok = bool(sep) and re.fullmatch(r"[A-Za-z]{3}", code.strip()) is not None and float(rate) > 0
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{pair!r} is not CODE=RATE with a positive rate (e.g. EUR=1.08)")
    return problems


def markdown_table() -> str:
    """The README configuration table."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in declared_settings():
        default = "" if s.default is None else f"`{s.default}`"
        if s.name in ("HUB_RULES_PATH", "HUB_MAPPINGS_PATH"):
            default = "(shipped)"
        secret = " (secret)" if s.secret else ""
        rows.append(f"| `{s.name}`{secret} | {default} | {s.help} |")
    return "\n".join(rows)
