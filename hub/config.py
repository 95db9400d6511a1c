"""Settings from ``HUB_*`` environment variables (and ``.env`` in development).

Every setting is declared once, with its default, type and whether it is a secret. The same
declarations validate the environment at start (one error naming every problem), render the
README's configuration table (``hub config --markdown``) and tell the log scrubber which values
must never be printed. Connectors declare their own settings next to their code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from dotenv import dotenv_values
from marshmallow import Schema, ValidationError, fields, validate

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One ``HUB_*`` variable."""

    name: str
    help: str
    default: Any = None
    kind: str = "str"  # str | int | float | bool | list | url
    secret: bool = False
    group: str = "core"


def _url(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://", value):
        raise ValidationError("must be a URL such as https://host/path")
    return value.rstrip("/")


class _ListField(fields.Field):
    """Comma-separated values (for secrets during rotation and for lists of names)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value if str(v).strip()]
        return [part.strip() for part in str(value).split(",") if part.strip()]


def _bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError("must be true or false (1/0, yes/no, on/off)")


_FIELD_FOR_KIND = {
    "str": lambda: fields.String(validate=validate.Length(min=1)),
    "int": lambda: fields.Integer(strict=False),
    "float": lambda: fields.Float(),
    "bool": lambda: fields.Function(deserialize=_bool),
    "list": _ListField,
    "url": lambda: fields.Function(deserialize=_url),
}

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
    Setting("HUB_RULES_PATH", "Rules files or folders (comma-separated).", [str(PROJECT_ROOT / "rules")],
            kind="list"),
    Setting("HUB_RETRY_MAX_ATTEMPTS", "Delivery attempts before an action is dead-lettered.", 20, kind="int"),
    Setting("HUB_RETRY_BASE_SECONDS", "First retry delay; doubles each attempt (with jitter).", 30.0, kind="float"),
    Setting("HUB_RETRY_MAX_SECONDS", "Longest single retry delay (with the defaults the last of 20 attempts comes about two days "
            "after the first).", 21600.0,
            kind="float"),
    Setting("HUB_LEASE_SECONDS", "How long a worker owns an action it is sending; after that the sweeper "
            "takes it back.", 60, kind="int"),
    Setting("HUB_STRANDED_AFTER_SECONDS", "Age after which queued work with no live job is re-enqueued.", 60,
            kind="int"),
    Setting("HUB_SWEEP_INTERVAL_SECONDS", "How often the scheduler sweeps for stranded work.", 30, kind="int"),
    Setting("HUB_SCHEDULER_INTERVAL_SECONDS", "How often the scheduler moves due actions to the queues.", 1.0,
            kind="float"),
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
)


@dataclass
class Settings:
    """Validated settings. Read with ``settings["HUB_NAME"]`` or the properties below."""

    values: dict[str, Any]
    declared: dict[str, Setting] = field(repr=False)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def __repr__(self) -> str:
        shown = {k: ("***" if self.declared[k].secret and v else v) for k, v in self.values.items()}
        return f"Settings({shown})"

    @property
    def database_url(self) -> str:
        return self.values["HUB_DATABASE_URL"] or f"sqlite:///{Path('var/hub.db').resolve()}"

    @property
    def embedded_queue(self) -> bool:
        return not self.values["HUB_REDIS_URL"]

    @property
    def production(self) -> bool:
        return self.values["HUB_ENV"] == "production"

    def secrets(self) -> list[str]:
        """Every secret value in force, longest first (for scrubbing text)."""
        found: list[str] = []
        for name, setting in self.declared.items():
            value = self.values.get(name)
            if not setting.secret or not value:
                continue
            found.extend(value if isinstance(value, list) else [str(value)])
        # a URL's password also shows on its own (driver errors, URLs re-rendered by a library)
        found.extend(password for url in found if (password := _password(url)))
        return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _password(value: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(value).password if "://" in value else None
    except ValueError:
        return None
    return unquote(password) if password else None


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

    declared = {s.name: s for s in declared_settings()}
    schema = Schema.from_dict({name: _FIELD_FOR_KIND[s.kind]() for name, s in declared.items()})()
    raw = {name: env[name] for name in declared if name in env and env[name] not in ("", None)}
    problems: list[str] = []
    try:
        values = schema.load(raw)
    except ValidationError as exc:
        values = dict(exc.valid_data or {})
        for name, messages in sorted(exc.messages_dict.items()):
            text = "; ".join(str(m) for m in (messages if isinstance(messages, list) else [messages]))
            problems.append(f"{name}: {text}")
    for name, setting in declared.items():
        values.setdefault(name, setting.default)
    settings = Settings(values=values, declared=declared)
    problems.extend(_missing(settings))
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
    from connectors import REGISTRY

    for name in settings["HUB_CONNECTORS"] or []:
        connector = REGISTRY.get(name)
        if connector is None:
            yield f"HUB_CONNECTORS: unknown connector {name!r} (known: {', '.join(sorted(REGISTRY))})"
            continue
        for var in connector.missing_inbound_settings(settings):
            yield f"{var}: required because HUB_CONNECTORS lists {name!r}"


def markdown_table() -> str:
    """The README configuration table."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in declared_settings():
        default = "" if s.default is None else f"`{s.default}`"
        if s.name == "HUB_RULES_PATH":
            default = "`./rules`"
        secret = " (secret)" if s.secret else ""
        rows.append(f"| `{s.name}`{secret} | {default} | {s.help} |")
    return "\n".join(rows)


class SecretScrubber:
    """Replaces secret values in text with ``***`` (used by the log formatters, tracebacks included, and
    stored errors). Each secret is also looked for as it appears in a ``repr`` (tracebacks and error
    messages often show values that way) and URL-encoded."""

    def __init__(self, settings: Settings):
        from urllib.parse import quote

        forms = set()
        for secret in settings.secrets():
            forms.update({secret, repr(secret)[1:-1], quote(secret, safe="")})
        self._secrets = sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text
