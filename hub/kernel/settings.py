"""Settings types: what a ``HUB_*`` variable is, how its value is checked, and the validated set.

Connectors declare their settings with these types; the assembly of every declared setting (core
and connectors) happens above the connector registry, in ``hub/config.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, validate


@dataclass(frozen=True)
class Setting:
    """One ``HUB_*`` variable."""

    name: str
    help: str
    default: Any = None
    kind: str = "str"  # str | int | float | bool | list | url | timezone
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
    "timezone": lambda: fields.String(validate=validate.OneOf(sorted(available_timezones()),
                                                              error="must be an IANA time zone such as Europe/Paris")),
}

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



def validate_values(declared: Mapping[str, Setting], env: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """Convert every declared variable found in ``env``; return the settings and one line per problem."""
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
    return Settings(values=values, declared=dict(declared)), problems


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
