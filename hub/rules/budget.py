"""Resource budgets for rule expressions and templates (Jinja2's sandbox stops escapes, not costs).

Without them one line in a rules file could take a process down: ``7 ** 6000000`` is a single
C operation holding the GIL for seconds (Jinja even folds it while *compiling*), ``'a' * 300000000``
takes 300 MB, and nested loops over ``range(100000)`` run for minutes. Each evaluation gets:

- numbers: an exponent result of at most ``MAX_INT_BITS`` bits, products likewise;
- strings and lists: at most ``MAX_LENGTH`` items from ``*``, ``+``, ``~``, ``%``, filters and
  method calls (a width or count argument over the limit is refused before it is used);
- ``range()`` of at most ``MAX_RANGE`` items, loops nested at most ``MAX_LOOP_NESTING`` deep and
  ``MAX_STEPS`` loop iterations and calls in all;
- ``MAX_OUTPUT`` characters of template output and ``TIME_LIMIT`` seconds of wall time, checked
  at every loop iteration, call and operator.

Constant operands are checked when the rules are loaded (``file:line:col`` from the loader); the
rest when the rule runs, where a breach fails that rule for that event and nothing else.
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.visitor import NodeTransformer

MAX_INT_BITS = 4096  # about 1,233 decimal digits: far beyond money or counts
MAX_LENGTH = 1_000_000  # the size of the largest webhook body
MAX_RANGE = 10_000
MAX_LOOP_NESTING = 2
MAX_STEPS = 100_000
MAX_OUTPUT = 1_000_000
TIME_LIMIT = 1.0
_BIG_WIDTH = re.compile(r"\d{6,}")  # a %-format or str.format width of a million or more


class BudgetExceeded(SecurityError):
    """A rule expression or template went past one of the budgets."""


class _State(threading.local):
    deadline = math.inf
    steps = 0
    depth = 0  # evaluations in progress on this thread (a template may call back into one)


_state = _State()


class Evaluation:
    """``with Evaluation():`` around one condition or template: starts a fresh budget, unless an
    outer evaluation on this thread already runs (the outer budget then covers both)."""

    __slots__ = ()

    def __enter__(self) -> None:
        if _state.depth == 0:
            _state.deadline = time.monotonic() + TIME_LIMIT
            _state.steps = 0
        _state.depth += 1

    def __exit__(self, *exc: Any) -> None:
        _state.depth -= 1


EVALUATION = Evaluation()


def step(count: int = 1) -> None:
    if _state.depth == 0:
        return  # not inside an evaluation (tools that render outside a rule)
    _state.steps += count
    if _state.steps > MAX_STEPS:
        raise BudgetExceeded(f"more than {MAX_STEPS} loop iterations and calls")
    if _state.steps & 0xFF == 0 and time.monotonic() > _state.deadline:
        raise BudgetExceeded(f"took more than {TIME_LIMIT:g} s")


def check_size(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_LENGTH:
        raise BudgetExceeded(f"a value of {len(value)} items or characters (at most {MAX_LENGTH})")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits")
    return value


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over budget, before computing it."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * left.bit_length() > MAX_INT_BITS * 2:  # bit_length overestimates log2 by at most 1
            raise BudgetExceeded(f"{_short(left)} ** {right} is larger than {MAX_INT_BITS} bits")
    elif operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_LENGTH:
                raise BudgetExceeded(f"repeating a value of {len(seq)} items {n} times (at most {MAX_LENGTH})")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded(f"a product of more than {MAX_INT_BITS} bits")
    elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, type(left)):
        if len(left) + len(right) > MAX_LENGTH:
            raise BudgetExceeded(f"a value of {len(left) + len(right)} items (at most {MAX_LENGTH})")
    elif operator == "%" and isinstance(left, str) and _BIG_WIDTH.search(left):
        raise BudgetExceeded("a format width of a million characters or more")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


#: filters whose int arguments are widths or counts (``"a"|center(10**9)``)
_WIDTH_FILTERS = {"center", "indent", "wordwrap", "truncate", "batch", "slice", "format"}


def _check_args(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_LENGTH:
            raise BudgetExceeded(f"an argument of {_short(arg)} (widths and counts at most {MAX_LENGTH})")
        if isinstance(arg, str) and _BIG_WIDTH.search(arg) and ("{" in arg or "%" in arg):
            raise BudgetExceeded("a format width of a million characters or more")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        step()
        if name in _WIDTH_FILTERS:
            _check_args(list(args[1:]) + list(kwargs.values()))
        if name == "replace" and len(args) >= 3 and isinstance(args[0], str):
            # "ab"|replace("", big) inserts ``big`` between every character
            old, new = str(args[1]), str(args[2])
            grows = (len(args[0]) + 1 if old == "" else args[0].count(old)) * max(len(new) - len(old), 0)
            if len(args[0]) + grows > MAX_LENGTH:
                raise BudgetExceeded(f"replace would make {len(args[0]) + grows} characters (at most {MAX_LENGTH})")
        return check_size(func(*args, **kwargs))

    for attr in ("jinja_pass_arg",):  # keep Jinja's @pass_context / @pass_environment markers
        if hasattr(func, attr):
            setattr(bounded, attr, getattr(func, attr))
    return bounded


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise BudgetExceeded(f"range of {len(rng)} items (at most {MAX_RANGE})")
    return rng


def _loop(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: one step per item."""
    for item in iterable:
        step()
        yield item


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: sizes checked before joining."""
    texts = [str(p) for p in parts]
    if sum(map(len, texts)) > MAX_LENGTH:
        raise BudgetExceeded(f"a string of more than {MAX_LENGTH} characters")
    return "".join(texts)


class _Rewrite(NodeTransformer):
    """Routes loops and ``~`` through the budget and checks constants and nesting at load."""

    def __init__(self) -> None:
        self.loops = 0

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.loops += 1
        if self.loops > MAX_LOOP_NESTING:
            raise TemplateSyntaxError(f"loops nested more than {MAX_LOOP_NESTING} deep", node.lineno)
        try:
            node = self.generic_visit(node)
        finally:
            self.loops -= 1
        node.iter = nodes.Filter(node.iter, "_budget_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_budget_concat", [], [], None, None,
                            lineno=node.lineno)

    def visit_BinExpr(self, node: nodes.BinExpr) -> nodes.Node:
        node = self.generic_visit(node)
        if isinstance(node.left, nodes.Const) and isinstance(node.right, nodes.Const):
            try:
                check_binop(node.operator, node.left.value, node.right.value)
            except BudgetExceeded as exc:
                raise TemplateSyntaxError(str(exc), node.lineno) from None
        return node

    visit_Pow = visit_Mul = visit_Add = visit_Mod = visit_BinExpr  # visitors dispatch on the class name

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        node = self.generic_visit(node)
        constants = [a.value for a in node.args if isinstance(a, nodes.Const)]
        callee = node.node
        try:
            if isinstance(callee, nodes.Name) and callee.name == "range" and len(constants) == len(node.args):
                _range(*constants)
            if isinstance(callee, nodes.Getattr) and isinstance(callee.node, nodes.Const) and isinstance(
                    callee.node.value, str):  # 'a'.ljust(10 ** 9)
                _check_args(constants)
        except (BudgetExceeded, TypeError) as exc:
            raise TemplateSyntaxError(str(exc), node.lineno) from None
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        node = self.generic_visit(node)
        if node.name in _WIDTH_FILTERS:
            try:
                _check_args([a.value for a in node.args if isinstance(a, nodes.Const)])
            except BudgetExceeded as exc:
                raise TemplateSyntaxError(str(exc), node.lineno) from None
        return node


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The rules' Jinja environment: the immutable sandbox plus the budgets above."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})  # also stops Jinja folding them at compile

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals.pop("lipsum", None)  # lipsum(200000) is a minute of CPU and useless in a rule
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters.update(_budget_loop=_loop, _budget_concat=_concat)

    def add_filters(self, **filters: Callable[..., Any]) -> None:
        self.filters.update({name: _bounded_filter(name, f) for name, f in filters.items()})

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        # every compile passes here (compile_expression skips _parse): rewrite, then generate
        return super()._generate(_Rewrite().visit(source), *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        step()
        check_binop(operator, left, right)
        return check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        step()
        if isinstance(getattr(__obj, "__self__", None), str):  # "-".center(n), "{:>9999999}".format(x)
            _check_args(list(args) + list(kwargs.values()))
        return check_size(super().call(__context, __obj, *args, **kwargs))


def render(chunks: Iterable[str]) -> str:
    """Join a template's output, stopping once it passes MAX_OUTPUT characters."""
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise BudgetExceeded(f"template output longer than {MAX_OUTPUT} characters")
        out.append(chunk)
    return "".join(out)
