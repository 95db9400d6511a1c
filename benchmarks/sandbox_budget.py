"""What the rule sandbox's budgets (hub/rules/budget.py) cost on ordinary rules.

In one run, the same conditions and templates, typical of rules/*.yaml, evaluated under
(a) Jinja2's plain ImmutableSandboxedEnvironment (the baseline) and (b) the hub's BudgetedSandbox
with its per-evaluation budget. Prints microseconds per evaluation and the ratio b/a.

    .venv/bin/python benchmarks/sandbox_budget.py [--n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.rules.budget import EVALUATION, BudgetedSandbox, render  # noqa: E402

CONDITIONS = [
    "subscription.status == 'past_due' and payment.attempt >= 2",
    "subscriber.total_paid * 2 > 100 and (mrr or 0) + 5 < 1000",
    "event.type in ['payment.failed', 'payment.succeeded'] and not subscriber.email.endswith('@test.com')",
]
TEMPLATES = [
    "Hi {{ subscriber.first_name ~ ' ' ~ subscriber.last_name }}, your plan {{ subscription.plan }} renews.",
    "{% for item in order['items'] %}{{ item.title }} x{{ item.quantity }}; {% endfor %}",
]
SCOPE = {
    "subscription": {"status": "past_due", "plan": "pro"}, "payment": {"attempt": 3}, "mrr": 40,
    "subscriber": {"total_paid": 120, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"},
    "event": {"type": "payment.failed"},
    "order": {"items": [{"title": f"Tea {i}", "quantity": i} for i in range(5)]},
}


def per_eval_us(env, budgeted: bool, n: int) -> float:  # type: ignore[no-untyped-def]
    funcs = [env.compile_expression(c) for c in CONDITIONS]
    templates = [env.from_string(t) for t in TEMPLATES]
    started = time.perf_counter()
    for _ in range(n):
        for f in funcs:
            if budgeted:
                with EVALUATION:
                    f(**SCOPE)
            else:
                f(**SCOPE)
        for t in templates:
            if budgeted:
                with EVALUATION:
                    render(t.root_render_func(t.new_context(SCOPE)))
            else:
                "".join(t.root_render_func(t.new_context(SCOPE)))
    return (time.perf_counter() - started) / (n * (len(funcs) + len(templates))) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain, budgeted = [], []
    for _ in range(args.rounds):  # interleaved, so machine load hits both alike
        plain.append(per_eval_us(ImmutableSandboxedEnvironment(), False, args.n))
        budgeted.append(per_eval_us(BudgetedSandbox(), True, args.n))
    a, b = statistics.median(plain), statistics.median(budgeted)
    print(f"plain sandbox     {a:7.2f} us per evaluation (median of {args.rounds} rounds)")
    print(f"budgeted sandbox  {b:7.2f} us per evaluation; ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
