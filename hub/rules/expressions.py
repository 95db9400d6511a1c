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
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.kernel.values import parse_time, rfc3339
from hub.rules.budget import EVALUATION, BudgetedSandbox, render

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


class Scope(dict):  # type: ignore[type-arg]
    """The names one evaluation sees: a plain dict to read, plus the Jinja context over it, built on
    first use and then shared by every condition and template evaluated on this scope. (Building a
    Jinja context per evaluation, as ``render(**ctx)`` does, copies the globals and the names each
    time: it was most of the cost of planning an event.) Do not change a scope once evaluated on;
    ``child`` makes a new one."""

    __slots__ = ("_jinja",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jinja: Context | None = None

    def child(self, **names: Any) -> "Scope":
        """This scope with ``names`` added or replaced (``step`` for each step of a schedule)."""
        out = Scope(self)
        out.update(names)
        if self._jinja is not None:
            out._jinja = Context(self._jinja.environment, {**self._jinja.parent, **names}, None, {})
        return out

    def jinja(self, env: ImmutableSandboxedEnvironment) -> Context:
        found = self._jinja
        if found is None or found.environment is not env:
            found = Context(env, {**env.globals, **self}, None, {})
            if self._jinja is None:
                self._jinja = found
        return found


def _jinja_context(env: ImmutableSandboxedEnvironment, ctx: dict[str, Any]) -> Context:
    if isinstance(ctx, Scope):
        return ctx.jinja(env)
    return Context(env, {**env.globals, **ctx}, None, {})


class Expressions:
    """A sandboxed environment with the helpers rules may call."""

    def __init__(self) -> None:
        self.env = BudgetedSandbox(undefined=_LenientUndefined, autoescape=False)  # see budget.py
        self.env.globals.update(timedelta=timedelta, parse_time=parse_time)
        self.env.add_filters(rfc3339=_rfc3339, duration=_duration_filter)
        self._compiled: dict[Any, Any] = {}

    def parse(self, source: str) -> nodes.Template:
        return self.env.parse("{{ (" + source + ") }}")

    def compile_condition(self, source: str) -> Evaluator:
        """Raises TemplateSyntaxError when the expression does not compile."""
        return self._expression(source)

    def _expression(self, source: str) -> Evaluator:
        """An expression evaluated on a scope's shared Jinja context (what ``compile_expression``'s
        callable does, without building a context per call); undefined reads as None."""
        # compiled once per distinct source: playbooks repeat "{{ subscriber.email }}" everywhere
        found = self._compiled.get(source)
        if found is None:
            root = self.env.compile_expression(source)._template.root_render_func
            env = self.env

            def found(ctx: dict[str, Any]) -> Any:
                context = _jinja_context(env, ctx)
                with EVALUATION:
                    for _ in root(context):  # the expression's template only assigns ``result``
                        pass
                value = context.vars.pop("result", None)
                return None if isinstance(value, Undefined) else value

            self._compiled[source] = found
        return found

    def _template(self, source: str) -> Evaluator:
        """A template rendered on a scope's shared Jinja context. A template with statements
        (``{% set %}`` writes the context's names) gets a context of its own over the same names."""
        found = self._compiled.get(("t", source))
        if found is None:
            root = self.env.from_string(source).root_render_func
            env, statements = self.env, "{%" in source

            def found(ctx: dict[str, Any]) -> str:
                context = _jinja_context(env, ctx)
                if statements:
                    context = Context(env, context.parent, None, {})
                with EVALUATION:
                    return render(root(context))

            self._compiled[("t", source)] = found
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
            return lambda ctx: _plain(expr(ctx))
        return self._template(value)

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
    from hub.rules.model import parse_duration

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


__all__ = ["Expressions", "Scope", "TemplateSyntaxError", "days_since"]
