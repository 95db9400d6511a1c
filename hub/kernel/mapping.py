"""Mapping tables: ``mappings/<connector>.yaml`` says which canonical type(s) a provider event
becomes and where each canonical field comes from. Connector code handles only what a table
cannot say (for example telling an upgrade from a downgrade).

Field specs:

- ``a.b.0.c``: a dotted path into the payload (numbers index lists); missing -> null.
- ``{$first: [spec, ...]}``: the first spec that is not null (e.g. both Stripe API shapes).
- ``{$unix: spec}`` / ``{$millis: spec}`` / ``{$iso: spec}``: a time, to RFC 3339 UTC.
- ``{$money: spec, currency: spec}``: integer minor units; ``{$decimal: spec, currency: spec}``:
  a decimal string converted with the currency's exponent.
- ``{$header: name}``: a request header. ``{$const: value}``: a literal.
- ``{$lower|$upper|$casefold|$str|$int|$bool: spec}``: conversions.
- ``{$map: spec, values: {from: to}, default: value}``: a lookup (e.g. provider status -> canonical).
- any other mapping: a nested object whose values are specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from marshmallow import Schema, ValidationError, fields, validates_schema

from hub.kernel import values
from hub.kernel.errors import ConfigError, PayloadError
from hub.kernel.events import ALL_TYPES, CanonicalEvent, EventType
from hub.kernel.paths import DEFAULT_MAPPINGS_PATH

_MISSING = object()


@dataclass
class Source:
    """What a spec reads: the parsed payload and the request headers (lower-case names)."""

    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def _path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        if isinstance(obj, list):
            if not part.lstrip("-").isdigit() or abs(int(part)) >= len(obj) + (int(part) < 0):
                return None
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def _int(v: Any) -> int | None:
    return None if v in (None, "") else int(v)


def _bool(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


_UNARY: dict[str, Callable[[Any], Any]] = {
    "$unix": values.from_unix,
    "$millis": values.from_millis,
    "$iso": values.from_iso,
    "$lower": lambda v: None if v is None else str(v).lower(),
    "$upper": lambda v: None if v is None else str(v).upper(),
    "$casefold": lambda v: None if v in (None, "") else str(v).strip().casefold(),
    "$str": lambda v: None if v is None else str(v),
    "$int": _int,
    "$bool": _bool,
}
TRANSFORMS = frozenset({*_UNARY, "$first", "$money", "$decimal", "$header", "$const", "$map"})


def extract(spec: Any, src: Source) -> Any:
    """Evaluate one field spec against a source. Conversion errors raise PayloadError."""
    if isinstance(spec, str):
        return _path(src.payload, spec)
    if isinstance(spec, list):
        return [extract(s, src) for s in spec]
    if not isinstance(spec, dict):
        return spec
    op = next((k for k in spec if k in TRANSFORMS), None)
    if op is None:
        out = {k: extract(v, src) for k, v in spec.items()}
        return {k: v for k, v in out.items() if v is not None} or None
    arg = spec[op]
    try:
        if op in _UNARY:
            return _UNARY[op](extract(arg, src))
        if op == "$first":
            return next((v for v in (extract(s, src) for s in arg) if v not in (None, "")), None)
        if op == "$money":
            return values.money(_int(extract(arg, src)), extract(spec.get("currency"), src))
        if op == "$decimal":
            return values.money_from_decimal(extract(arg, src), extract(spec.get("currency"), src))
        if op == "$header":
            return src.headers.get(str(arg).lower())
        if op == "$const":
            return arg
        if op == "$map":
            key = extract(arg, src)
            table = spec.get("values", {})
            return table.get(key, spec.get("default", key)) if key is not None else spec.get("default")
    except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: epoch beyond the platform
        raise PayloadError(f"cannot read {op} {arg!r}: {exc}") from exc
    raise AssertionError(op)


class _EventSchema(Schema):
    type = fields.Raw(required=True)  # one canonical type or a list
    subject = fields.Raw(load_default=None)
    parts = fields.Dict(keys=fields.String(), load_default=dict)
    require = fields.List(fields.String(), load_default=list)
    id = fields.Raw(load_default=None)
    time = fields.Raw(load_default=None)

    @validates_schema
    def _known_types(self, data: dict[str, Any], **_: Any) -> None:
        types = data["type"] if isinstance(data["type"], list) else [data["type"]]
        unknown = [t for t in types if t not in ALL_TYPES]
        if unknown:
            raise ValidationError(f"unknown canonical type(s): {', '.join(unknown)}", "type")


class _TableSchema(Schema):
    provider = fields.String(required=True)
    event_type = fields.Raw(required=True)
    event_id = fields.Raw(required=True)
    time = fields.Raw(required=True)
    subject = fields.Raw(load_default=None)
    parts = fields.Dict(keys=fields.String(), load_default=dict)
    events = fields.Dict(keys=fields.String(), values=fields.Nested(_EventSchema), required=True)


@dataclass
class EventMapping:
    types: list[str]
    parts: dict[str, Any]
    subject: Any
    require: list[str]
    id: Any
    time: Any


@dataclass
class MappingTable:
    """One provider's table, validated when loaded."""

    provider: str
    event_type: Any
    event_id: Any
    time: Any
    subject: Any
    shared_parts: dict[str, Any]
    events: dict[str, EventMapping]

    @classmethod
    def load(cls, path: Path) -> "MappingTable":
        try:
            doc = yaml.safe_load(path.read_text())
            data = _TableSchema().load(doc or {})
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError([f"{path}: {exc}"]) from exc
        events = {}
        for name, ev in data["events"].items():
            types = ev["type"] if isinstance(ev["type"], list) else [ev["type"]]
            events[name] = EventMapping(types, ev["parts"], ev["subject"], ev["require"], ev["id"], ev["time"])
        return cls(data["provider"], data["event_type"], data["event_id"], data["time"], data["subject"],
                   data["parts"], events)

    def provider_type(self, src: Source) -> str | None:
        value = extract(self.event_type, src)
        return None if value is None else str(value)

    def normalize(self, src: Source, *, fallback_id: str) -> list[CanonicalEvent]:
        """Canonical events for one provider event; ``provider.unmapped`` when the type has no row."""
        ptype = self.provider_type(src) or "unknown"
        mapping = self.events.get(ptype)
        provider_event_id = str(
            extract(mapping.id if mapping and mapping.id else self.event_id, src) or fallback_id
        )
        time = extract(mapping.time if mapping and mapping.time else self.time, src)
        if not time:
            raise PayloadError(f"{self.provider} {ptype}: no event time in the payload")
        if mapping is None:
            return [CanonicalEvent(type=EventType.PROVIDER_UNMAPPED, time=time, provider=self.provider,
                                   providereventid=provider_event_id, providertype=ptype,
                                   data={"raw": src.payload})]
        for required in mapping.require:
            if _path(src.payload, required) in (None, ""):
                raise PayloadError(f"{self.provider} {ptype}: required field {required!r} is missing")
        data: dict[str, Any] = {}
        for name, spec in mapping.parts.items():
            spec = self.shared_parts.get(spec, spec) if isinstance(spec, str) else spec
            value = extract(spec, src)
            if value is not None:
                data[name] = value
        subject = extract(mapping.subject if mapping.subject is not None else self.subject, src)
        return [
            CanonicalEvent(type=t, time=time, provider=self.provider, providereventid=provider_event_id,
                           providertype=ptype, subject=None if subject is None else str(subject), data=data)
            for t in mapping.types
        ]


_TABLES: dict[tuple[str, str], MappingTable] = {}
_folder: Path = DEFAULT_MAPPINGS_PATH


def use_folder(folder: str | Path | None) -> None:
    """Read tables from ``folder`` (``HUB_MAPPINGS_PATH``) from now on; None: the shipped tables."""
    global _folder
    _folder = Path(folder) if folder else DEFAULT_MAPPINGS_PATH


def folder() -> Path:
    """The folder tables are read from (``HUB_MAPPINGS_PATH`` or the shipped tables)."""
    return _folder


def table(provider: str, folder: str | Path | None = None) -> MappingTable:
    """The provider's table from ``folder`` or the configured folder (cached after the first load)."""
    base = Path(folder) if folder else _folder
    key = (str(base), provider)
    if key not in _TABLES:
        _TABLES[key] = MappingTable.load(base / f"{provider}.yaml")
    return _TABLES[key]
