"""Conditions and templates in Jinja2's sandbox (never ``eval``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Callable

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.values import parse_time

_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


def _days_since(value: Any, now: datetime | None = None) -> float | None:
    if not value:
        return None
    return ((now or datetime.now(parse_time(value).tzinfo)) - parse_time(value)).total_seconds() / 86400


class Expressions:
    """A sandboxed environment with the helpers rules may call."""

    def __init__(self) -> None:
        self.env = ImmutableSandboxedEnvironment(undefined=_LenientUndefined, autoescape=False)
        self.env.globals.update(days_since=_days_since, timedelta=timedelta, parse_time=parse_time)

    def compile_condition(self, source: str) -> Callable[[dict[str, Any]], Any]:
        """Raises TemplateSyntaxError when the expression does not compile."""
        expr = self.env.compile_expression(source, undefined_to_none=True)
        return lambda ctx: expr(**ctx)

    def compile_value(self, value: Any) -> Callable[[dict[str, Any]], Any]:
        """A param value: strings are templates (a lone ``{{ expr }}`` keeps its native type)."""
        if isinstance(value, dict):
            parts = {k: self.compile_value(v) for k, v in value.items()}
            return lambda ctx: {k: f(ctx) for k, f in parts.items()}
        if isinstance(value, list):
            items = [self.compile_value(v) for v in value]
            return lambda ctx: [f(ctx) for f in items]
        if not isinstance(value, str) or "{" not in value:
            return lambda ctx: value
        whole = _WHOLE.match(value)
        if whole and "{{" not in whole.group(1):
            expr = self.env.compile_expression(whole.group(1), undefined_to_none=True)
            return lambda ctx: expr(**ctx)
        template = self.env.from_string(value)
        return lambda ctx: template.render(**ctx)


class _LenientUndefined(StrictUndefined):
    """Missing attributes read as undefined (falsy) instead of raising, so ``subscription.cancel_at``
    works on events without it; printing or iterating an undefined still fails loudly."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    __bool__ = lambda self: False  # noqa: E731
    __eq__ = lambda self, other: other is None or isinstance(other, _LenientUndefined)  # noqa: E731
    __hash__ = StrictUndefined.__hash__


__all__ = ["Expressions", "TemplateSyntaxError"]
