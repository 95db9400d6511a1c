"""Segment, tier and loyalty definitions from the ``segments:``, ``tiers:`` and ``loyalty:`` keys of the
rules files (``rules/segments.yaml`` by default), validated with marshmallow and compiled once per
file version. Problems are reported as ``file:line:col: message``, like the rules."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from jinja2 import Undefined
from jinja2.runtime import Context
from marshmallow import Schema, ValidationError, fields, validate

import connectors
from hub.rules.budget import EVALUATION
from hub.rules.expressions import Expressions, TemplateSyntaxError
from hub.rules.loader import rule_files
from hub.rules.yamlpos import LocatedError, load
from hub.subscribers.engagement import DEFAULT_HALF_LIFE_DAYS, DEFAULT_WEIGHTS, Weights

#: each tool that offers segment-sync targets, with the kinds it takes (declared by its connector)
_Sync = Schema.from_dict({
    name: fields.Dict(keys=fields.String(validate=validate.OneOf([t.kind for t in c.sync_targets])))
    for name, c in connectors.REGISTRY.items() if c.sync_targets
}, name="Sync")


class _Segment(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$"))
    description = fields.String(load_default="")
    when = fields.String(required=True)
    sync = fields.Nested(_Sync, load_default=dict)


class _Engagement(Schema):
    half_life_days = fields.Float(load_default=DEFAULT_HALF_LIFE_DAYS, validate=validate.Range(min=0.1))
    weights = fields.Dict(keys=fields.String(), values=fields.Float(), load_default=lambda: dict(DEFAULT_WEIGHTS))


class _Segments(Schema):
    lifecycle = fields.List(fields.Nested(_Segment), load_default=list)
    custom = fields.List(fields.Nested(_Segment), load_default=list)
    engagement = fields.Nested(_Engagement, load_default=dict)
    profile_sync = fields.Nested(_Sync, load_default=dict)


class _Tier(Schema):
    name = fields.String(required=True)
    min_points = fields.Integer(required=True, validate=validate.Range(min=0))


class _Loyalty(Schema):
    points_per_unit = fields.Float(load_default=1.0, validate=validate.Range(min=0))
    earn_on = fields.List(fields.String(), load_default=lambda: ["payment.succeeded", "order.paid"])


#: the names a segment condition sees (``engine.evaluate`` builds them) besides Jinja's own
CONDITION_NAMES = frozenset({
    "active", "trialing", "past_due", "paused", "cancellation_scheduled", "mrr_minor", "total_paid_minor",
    "currency", "points", "tier", "consent", "tenure_days", "engagement", "days_since_engaged", "active_months",
    "lifecycle", "subscriber", "now", "days_since", "timedelta", "parse_time", "true", "false", "none", "True",
    "False", "None", "range", "dict", "namespace"})

@dataclass
class SegmentDef:
    id: str
    when: Condition
    source: str
    lifecycle: bool
    description: str = ""
    sync: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SegmentConfig:
    """Everything the segment engine needs, compiled."""

    lifecycle: list[SegmentDef]
    custom: list[SegmentDef]
    tiers: list[tuple[str, int]]  # ascending by min_points
    points_per_unit: float
    earn_on: list[str]
    half_life_days: float
    weights: dict[str, float]
    profile_sync: dict[str, dict[str, Any]]
    profile_values: dict[str, Callable[[dict[str, Any]], Any]]  # "dest:kind:name" -> compiled expression
    hash: str

    @property
    def engagement(self) -> Weights:
        return Weights(self.weights, self.half_life_days)

    @property
    def segments(self) -> list[SegmentDef]:
        return self.lifecycle + self.custom

    def by_id(self, segment: str) -> SegmentDef | None:
        return next((s for s in self.segments if s.id == segment), None)

    def tier_for(self, points: int) -> str | None:
        found = None
        for name, minimum in self.tiers:
            if points >= minimum:
                found = name
        return found


class Condition:
    """A segment condition, compiled in the rules' sandbox. Evaluated for every subscriber on each
    sweep, so it runs on a Jinja context the caller builds once per subscriber (``context``) and
    shares across that subscriber's conditions, instead of one context per call as
    ``compile_expression`` would; the names dict carries the helpers itself (no Jinja globals)."""

    def __init__(self, expressions: Expressions, source: str):
        expressions.compile_condition(source)  # the rules' own syntax check and error messages
        self.env = expressions.env
        self._render = self.env.compile_expression(source, undefined_to_none=True)._template.root_render_func

    def context(self, names: dict[str, Any]) -> Context:
        """A context over ``names`` (not copied: names added later are seen) for ``on``."""
        return Context(self.env, names, None, {})

    def on(self, context: Context) -> Any:
        context.vars.clear()  # each condition sees only the names, never another's ``result``
        with EVALUATION:  # the rules' budgets (hub/rules/budget.py)
            for _ in self._render(context):  # the expression's template only assigns ``result``
                pass
        value = context.vars.get("result")
        return None if isinstance(value, Undefined) else value

    def __call__(self, names: dict[str, Any]) -> Any:
        return self.on(self.context(names))


def load_config(paths: Iterable[str | Path]) -> SegmentConfig:
    """Read the segment keys from every rules file; raise LocatedError listing every problem."""
    expressions = Expressions()
    errors: list[str] = []
    digest = hashlib.sha256()
    raw_segments: dict[str, Any] = {}
    tiers: list[dict[str, Any]] = []
    loyalty: dict[str, Any] = {}
    lifecycle: list[SegmentDef] = []
    custom: list[SegmentDef] = []
    profile_values: dict[str, Callable[[dict[str, Any]], Any]] = {}
    for path in rule_files(paths):
        text = path.read_text()
        digest.update(path.name.encode() + b"\0" + text.encode())
        try:
            doc = load(text, str(path))
        except LocatedError as exc:
            errors.extend(exc.errors)
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        for key, schema in (("segments", _Segments()), ("tiers", _Tier(many=True)), ("loyalty", _Loyalty())):
            if key not in data:
                continue
            try:
                loaded = schema.load(data[key])
            except ValidationError as exc:
                errors.extend(_located(doc, (key,), exc.messages))
                if key == "segments":  # the conditions' own problems, reported in the same pass
                    errors.extend(_condition_errors(expressions, doc, data[key]))
                continue
            if key == "tiers":
                tiers = loaded
            elif key == "loyalty":
                loyalty = loaded
            else:
                raw_segments = loaded
                for group, target in (("lifecycle", lifecycle), ("custom", custom)):
                    for index, seg in enumerate(loaded[group]):
                        where = doc.where(("segments", group, index, "when"))
                        try:
                            compiled = Condition(expressions, seg["when"])
                        except TemplateSyntaxError as exc:
                            errors.append(f"{where}: segment {seg['id']!r}: {exc.message}")
                            continue
                        errors.extend(f"{where}: segment {seg['id']!r}: {problem}"
                                      for problem in unknown_names(expressions, seg["when"]))
                        target.append(SegmentDef(seg["id"], compiled, where, group == "lifecycle",
                                                 seg["description"], seg["sync"]))
                for dest, spec in loaded["profile_sync"].items():
                    for kind in ("properties", "fields"):
                        for name, expr in (spec.get(kind) or {}).items():
                            try:
                                profile_values[f"{dest}:{_KIND[kind]}:{name}"] = \
                                    expressions.compile_condition(str(expr))
                            except TemplateSyntaxError as exc:
                                errors.append(f"{doc.where(('segments', 'profile_sync', dest, kind, name))}: "
                                              f"{exc.message}")
                                continue
                            errors.extend(f"{doc.where(('segments', 'profile_sync', dest, kind, name))}: {p}"
                                          for p in unknown_names(expressions, str(expr)))
    seen: set[str] = set()
    for seg in lifecycle + custom:
        if seg.id in seen:
            errors.append(f"{seg.source}: duplicate segment id {seg.id!r}")
        seen.add(seg.id)
    if errors:
        raise LocatedError(errors)
    engagement = raw_segments.get("engagement") or _Engagement().load({})
    loyalty = loyalty or _Loyalty().load({})
    return SegmentConfig(
        lifecycle=lifecycle, custom=custom,
        tiers=sorted(((t["name"], t["min_points"]) for t in tiers), key=lambda t: t[1]),
        points_per_unit=loyalty["points_per_unit"], earn_on=loyalty["earn_on"],
        half_life_days=engagement["half_life_days"], weights=engagement["weights"],
        profile_sync=raw_segments.get("profile_sync") or {}, profile_values=profile_values,
        hash=digest.hexdigest()[:16],
    )


_KIND = {"properties": "property", "fields": "field"}


def _condition_errors(expressions: Expressions, doc: Any, raw: Any) -> list[str]:
    """Problems of the segment conditions in a ``segments:`` block that failed validation elsewhere."""
    out: list[str] = []
    for group in ("lifecycle", "custom"):
        items = raw.get(group) if isinstance(raw, dict) else None
        for index, seg in enumerate(items if isinstance(items, list) else []):
            if not isinstance(seg, dict) or not isinstance(seg.get("when"), str):
                continue
            where = doc.where(("segments", group, index, "when"))
            try:
                Condition(expressions, seg["when"])
            except TemplateSyntaxError as exc:
                out.append(f"{where}: segment {seg.get('id')!r}: {exc.message}")
                continue
            out.extend(f"{where}: segment {seg.get('id')!r}: {p}" for p in unknown_names(expressions, seg["when"]))
    return out


def unknown_names(expressions: Expressions, source: str) -> list[str]:
    """A misspelled name in a segment condition is an error, not a segment that is always empty."""
    import difflib

    out = []
    for path in expressions.referenced_paths(source, condition=True):
        root = path.split(".")[0]
        if root not in CONDITION_NAMES:
            close = difflib.get_close_matches(root, sorted(CONDITION_NAMES), n=1, cutoff=0.6)
            out.append(f"unknown name {root!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out


def _located(doc: Any, path: tuple[Any, ...], messages: Any) -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out.extend(_located(doc, path + (key,), value))
        return out
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    if text == "Unknown field.":  # marshmallow does not name it: a sync target or key that does not exist
        return [f"{doc.where(path)}: unknown key {path[-1]!r}"]
    if path[-1] == "key" and len(path) > 1:  # a dict key that failed its validation
        return [f"{doc.where(path[:-1])}: unknown key {path[-2]!r}: {text}"]
    return [f"{doc.where(path)}: {path[-1]}: {text}"]


_cache: dict[tuple[str, ...], tuple[tuple[Any, ...], SegmentConfig]] = {}
_cache_lock = threading.Lock()


def current(paths: Iterable[str | Path]) -> SegmentConfig:
    """The compiled config for ``paths``, reloaded when a file changes (a broken file keeps the old one)."""
    key = tuple(str(p) for p in paths)
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in rule_files(key))
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            config = load_config(key)
        except LocatedError:
            if cached:
                return cached[1]
            raise
        _cache[key] = (stamp, config)
        return config
