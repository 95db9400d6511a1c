"""Conditions and templates in Jinja2's sandbox (never ``eval``).

A missing value reads as undefined: falsy in a condition, ``None`` as a whole-value parameter
(``"{{ invoice.hosted_url }}"``) and empty inside a longer template, so a rule works on events
that lack an optional field.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.values import parse_time, rfc3339

_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)
_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$")
Evaluator = Callable[[dict[str, Any]], Any]


def days_since(value: Any, now: datetime) -> float | None:
    """Days (fractional) from ``value`` to ``now``; None when ``value`` is empty."""
    if not value or isinstance(value, Undefined):
        return None
    return (now - parse_time(value)).total_seconds() / 86400


class _LenientUndefined(Undefined):
    """Missing attributes chain to undefined instead of raising (``subscription.cancel_at`` on an
    event without a subscription)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    __getitem__ = __getattr__

    def __eq__(self, other: Any) -> bool:
        return other is None or isinstance(other, Undefined)

    __hash__ = Undefined.__hash__


def _rfc3339(value: Any) -> str | None:
    """``{{ step.due_at | rfc3339 }}``: any time value as RFC 3339 UTC."""
    if value is None or isinstance(value, Undefined) or value == "":
        return None
    return rfc3339(parse_time(value))


class Expressions:
    """A sandboxed environment with the helpers rules may call."""

    def __init__(self) -> None:
        self.env = ImmutableSandboxedEnvironment(undefined=_LenientUndefined, autoescape=False)
        self.env.globals.update(timedelta=timedelta, parse_time=parse_time)
        self.env.filters.update(rfc3339=_rfc3339, duration=_duration_filter)
        self._compiled: dict[Any, Any] = {}

    def parse(self, source: str) -> nodes.Template:
        return self.env.parse("{{ (" + source + ") }}")

    def compile_condition(self, source: str) -> Evaluator:
        """Raises TemplateSyntaxError when the expression does not compile."""
        expr = self._expression(source)
        return lambda ctx: expr(**ctx)

    def _expression(self, source: str) -> Any:
        # compiled once per distinct source: playbooks repeat "{{ subscriber.email }}" everywhere
        found = self._compiled.get(source)
        if found is None:
            found = self._compiled[source] = self.env.compile_expression(source, undefined_to_none=True)
        return found

    def _template(self, source: str) -> Any:
        found = self._compiled.get(("t", source))
        if found is None:
            found = self._compiled[("t", source)] = self.env.from_string(source)
        return found

    def compile_value(self, value: Any) -> Evaluator:
        """A param value: strings are templates (a lone ``{{ expr }}`` keeps its native type)."""
        if isinstance(value, dict):
            # a templated value that renders to nothing (a field the event lacks) is left out, so an
            # action never clears a property in a tool just because this event did not carry it
            parts = {k: (self.compile_value(v), _templated(v)) for k, v in value.items()}
            return lambda ctx: {k: r for k, (f, t) in parts.items() if (r := f(ctx)) is not None or not t}
        if isinstance(value, list):
            items = [self.compile_value(v) for v in value]
            return lambda ctx: [f(ctx) for f in items]
        if not isinstance(value, str) or "{" not in value:
            return lambda ctx: value
        whole = _WHOLE.match(value)
        if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
            path = _PATH.match(whole.group(1))
            if path and path.group(1).split(".")[0] not in ("true", "false", "none", "True", "False", "None"):
                # a plain dotted path ("{{ invoice.id }}", the common case): read it without Jinja;
                # same result as the sandbox on the event's dicts, a missing value is None
                return _path_reader(path.group(1).split("."))
            expr = self._expression(whole.group(1))
            return lambda ctx: _plain(expr(**ctx))
        template = self._template(value)
        return lambda ctx: template.render(**ctx)

    def referenced_paths(self, source: Any, *, condition: bool = False) -> list[str]:
        """Dotted paths a condition (``condition=True``) or the templates in a value read
        (``subscription.status``), in order."""
        out: list[str] = []
        for text in _strings(source):
            if not condition and "{{" not in text and "{%" not in text:
                continue  # a literal
            try:
                tree = self.env.parse("{{ (" + text + ") }}" if condition else text)
            except TemplateSyntaxError:
                continue
            for path in _paths(tree):
                if path not in out:
                    out.append(path)
        return out


def _path_reader(parts: list[str]) -> Evaluator:
    def read(ctx: dict[str, Any]) -> Any:
        value: Any = ctx
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return _plain(value)

    return read


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    return value


def _duration_filter(value: Any) -> timedelta:
    from .model import parse_duration

    return parse_duration(value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _paths(node: nodes.Node) -> Iterator[str]:
    """Longest Name.attr.attr chains in an expression tree."""
    if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
        parts: list[str] = []
        cur: nodes.Node = node
        while True:
            if isinstance(cur, nodes.Getattr):
                parts.append(cur.attr)
                cur = cur.node
            elif isinstance(cur, nodes.Getitem) and isinstance(cur.arg, nodes.Const) and isinstance(
                    cur.arg.value, (str, int)):
                parts.append(str(cur.arg.value))
                cur = cur.node
            else:
                break
        if isinstance(cur, nodes.Name) and cur.ctx == "load":
            yield ".".join([cur.name] + parts[::-1])
            return
    for child in node.iter_child_nodes():
        yield from _paths(child)


__all__ = ["Expressions", "TemplateSyntaxError", "days_since"]
