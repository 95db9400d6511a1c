"""Rules files as hostile input (issue 13): what the environment, YAML aliases and the sandbox may
cost or reveal, and hot reloads that never hold up the threads serving requests."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hub.rules import registry as registry_module
from hub.rules.budget import BudgetExceeded
from hub.rules.expressions import Expressions
from hub.rules.loader import load_rules
from hub.rules.registry import RulesRegistry
from hub.rules.yamlpos import LocatedError

RULE = """\
rules:
  - id: r
    on: [payment.failed]
    when: "{when}"
    actions:
      - klaviyo.track_event: {{metric: "{metric}"}}
"""


def _errors(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "rules.yaml").write_text(text)
    with pytest.raises(LocatedError) as caught:
        load_rules([tmp_path], environ={} if environ is None else environ)
    return caught.value.errors


def test_rules_may_not_read_secret_settings_or_unlisted_variables(tmp_path: Path) -> None:
    text = ("vars:\n  admin: ${HUB_ADMIN_TOKEN}\n  stripe: 'x-${HUB_STRIPE_WEBHOOK_SECRET:-none}'\n"
            "  home: ${HOME:-/}\n")
    environ = {"HUB_ADMIN_TOKEN": "t0ps3cret", "HUB_STRIPE_WEBHOOK_SECRET": "whsec_1", "HOME": "/root"}
    errors = _errors(tmp_path, text, environ)
    where = tmp_path / "rules.yaml"
    assert [e.split(": rules may not read ")[0] for e in errors] == [f"{where}:2:10", f"{where}:3:11", f"{where}:4:9"]
    assert "${HUB_ADMIN_TOKEN}" in errors[0] and "HUB_RULES_ENV" in errors[0]
    assert not any("t0ps3cret" in e or "whsec_1" in e for e in errors)
    # listing a secret in HUB_RULES_ENV does not make it readable; listing another name does
    errors = _errors(tmp_path, text, {**environ, "HUB_RULES_ENV": "HUB_ADMIN_TOKEN,HOME"})
    assert [e.split(": ")[0] for e in errors] == [f"{where}:2:10", f"{where}:3:11"]


def test_rules_read_hub_rules_variables_and_the_listed_ones(tmp_path: Path) -> None:
    (tmp_path / "vars.yaml").write_text("vars:\n  a: ${HUB_RULES_LIST}\n  b: ${SHOP_NAME}\n  c: ${HUB_PLAYBOOK_CRM:-none}\n")
    loaded = load_rules([tmp_path], environ={"HUB_RULES_LIST": "[1, 2]", "SHOP_NAME": "Acme",
                                             "HUB_RULES_ENV": "SHOP_NAME"})
    assert loaded.vars == {"a": [1, 2], "b": "Acme", "c": "none"}


@pytest.mark.parametrize("when, message", [
    ("7 ** 3000000", "larger than 4096 bits"),
    ("('a' * 300000000) == 'a'", "repeating a value of 1 items 300000000 times"),
    ("range(100000) | list | length > 1", "range of 100000 items"),
    ("'x' | center(1000000000)", "widths and counts at most"),
])
def test_a_rules_file_over_the_sandbox_budgets_is_refused_with_its_location(tmp_path: Path, when: str,
                                                                            message: str) -> None:
    errors = _errors(tmp_path, RULE.format(when=when, metric="m"))
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'rules.yaml'}:4:") and message in errors[0]


def test_loops_nested_three_deep_are_refused_with_their_location(tmp_path: Path) -> None:
    metric = "{% for a in range(3) %}{% for b in range(3) %}{% for c in range(3) %}x{% endfor %}{% endfor %}{% endfor %}"
    errors = _errors(tmp_path, RULE.format(when="true", metric=metric))
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'rules.yaml'}:6:") and "nested more than 2" in errors[0]


@pytest.mark.parametrize("template, message", [
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "loop iterations"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "more than 1000000 characters"),
    ("{{ 7 ** (n * 1000) }}", "larger than 4096 bits"),
    ("{{ 'a' * n * n }}", "repeating"),
    ("{{ '-'.ljust(n * n * 100) }}", "widths and counts"),
    ("{% for i in range(10000) %}{{ x }}{% endfor %}", "template output longer than 1000000"),
])
def test_data_driven_costs_stop_at_the_budget_when_the_rule_runs(template: str, message: str) -> None:
    render = Expressions().compile_value(template)
    with pytest.raises(BudgetExceeded, match=message):
        render({"n": 9999, "x": "y" * 200})


def test_ordinary_expressions_are_untouched_by_the_budgets() -> None:
    exprs = Expressions()
    assert exprs.compile_condition("2 ** 64 == 18446744073709551616 and 'ab' * 2 == 'abab'")({})
    assert exprs.compile_value("{% for i in range(3) %}{{ i }}{% endfor %}-{{ name ~ '!' }}")({"name": "x"}) == "012-x!"


BOMB = "vars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def test_a_yaml_alias_bomb_is_refused_with_its_location(tmp_path: Path) -> None:
    errors = _errors(tmp_path, BOMB)
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'rules.yaml'}:") and "more than 10000" in errors[0]


def test_a_recursive_yaml_alias_is_refused_with_its_location(tmp_path: Path) -> None:
    assert _errors(tmp_path, "vars:\n  x: &x [1, *x]\n") == [
        f"{tmp_path / 'rules.yaml'}:2:6: recursive alias: the anchor here contains an alias to itself"]


def test_a_hot_reload_runs_off_the_calling_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules.yaml").write_text(RULE.format(when="true", metric="first"))
    registry = RulesRegistry([tmp_path], check_every=0)
    first = registry.current()
    release = threading.Event()
    real_load = registry_module.load_rules

    def slow_load(*args):  # type: ignore[no-untyped-def]
        release.wait(60)  # a load that takes as long as the test wants
        return real_load(*args)

    monkeypatch.setattr(registry_module, "load_rules", slow_load)
    (tmp_path / "rules.yaml").write_text(RULE.format(when="true", metric="second") + "\n")
    answers = []
    caller = threading.Thread(target=lambda: answers.extend([registry.current(), registry.current()]))
    caller.start()
    caller.join(30)
    assert answers == [first, first]  # the caller got the rules in force while the load was blocked
    release.set()
    registry.wait_reloaded()
    assert registry.current().hash != first.hash
