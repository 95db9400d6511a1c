"""Load and validate rules files. Every problem is reported at once as ``file:line:col: message``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

from marshmallow import ValidationError

from hub.events import ALL_TYPES

from .expressions import Expressions, TemplateSyntaxError
from .model import CompiledAction, Rule, RuleSet, Step, parse_duration
from .yamlpos import Located, LocatedError, load

RULE_KEYS = {"id", "description", "enabled", "on", "when", "actions", "schedule", "cancel_on", "missed"}


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml")))
        elif p.exists():
            files.append(p)
    return files


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Compile every rules file under ``paths``; raise LocatedError listing every problem."""
    files = rule_files(paths)
    digest = hashlib.sha256()
    errors: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        text = path.read_text()
        digest.update(str(path.name).encode() + b"\0" + text.encode() + b"\0")
        try:
            doc = load(text, str(path))
        except LocatedError as exc:
            errors.extend(exc.errors)
            continue
        for rule, problems in _compile_file(doc):
            errors.extend(problems)
            if rule is None:
                continue
            if rule.id in seen:
                errors.append(f"{rule.source}: duplicate rule id {rule.id!r} (first defined at {seen[rule.id]})")
                continue
            seen[rule.id] = rule.source
            rules.append(rule)
    if errors:
        raise LocatedError(errors)
    return RuleSet(rules=rules, hash=digest.hexdigest()[:16], files=[str(f) for f in files])


def _compile_file(doc: Located) -> Iterable[tuple[Rule | None, list[str]]]:
    data = doc.data
    if data is None:
        return
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        yield None, [f"{doc.where(())}: a rules file is a mapping with a 'rules:' list"]
        return
    for index, raw in enumerate(data.get("rules") or []):
        yield _compile_rule(doc, ("rules", index), raw)


def _compile_rule(doc: Located, path: tuple[Any, ...], raw: Any) -> tuple[Rule | None, list[str]]:
    from connectors import action_spec

    errors: list[str] = []

    def err(sub: tuple[Any, ...], message: str) -> None:
        errors.append(f"{doc.where(path + sub)}: {message}")

    if not isinstance(raw, dict):
        err((), "a rule is a mapping with at least 'id', 'on' and 'actions'")
        return None, errors
    for key in raw.keys() - RULE_KEYS:
        err((key,), f"unknown key {key!r} (allowed: {', '.join(sorted(RULE_KEYS))})")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        err(("id",), "'id' is required and must be a string")
        rule_id = f"<rule {path[-1]}>"
    on = raw.get("on")
    on = [on] if isinstance(on, str) else on
    if not on or not isinstance(on, list):
        err(("on",), "'on' must list canonical event types")
        on = []
    for i, pattern in enumerate(on):
        if not _type_known(str(pattern)):
            err(("on", i), f"unknown event type {pattern!r}")
    exprs = Expressions()
    when = None
    if raw.get("when") is not None:
        try:
            when = exprs.compile_condition(str(raw["when"]))
        except TemplateSyntaxError as exc:
            err(("when",), f"condition does not compile: {exc.message}")
    actions: list[CompiledAction] = []
    raw_actions = raw.get("actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        err(("actions",), "'actions' must be a non-empty list of '<connector>.<action>: {params}'")
        raw_actions = []
    for i, item in enumerate(raw_actions):
        if not isinstance(item, dict) or len(item) != 1:
            err(("actions", i), "each action is a single '<connector>.<action>: {params}' mapping")
            continue
        qualified, params = next(iter(item.items()))
        found = action_spec(str(qualified))
        if found is None:
            err(("actions", i), f"unknown action {qualified!r}")
            continue
        connector, spec = found
        params = params or {}
        try:
            compiled = exprs.compile_value(params)
        except TemplateSyntaxError as exc:
            err(("actions", i, qualified), f"template does not compile: {exc.message}")
            continue
        problems = _static_param_errors(spec.schema, params)
        for field, message in problems:
            err(("actions", i, qualified, field), f"{qualified}: {field}: {message}")
        actions.append(CompiledAction(connector.name, spec.name, compiled, params))
    anchor, steps = None, [Step("now", parse_duration(0), "at")]
    schedule = raw.get("schedule")
    if schedule is not None:
        anchor, steps = _schedule(schedule, lambda sub, m: err(("schedule",) + sub, m))
    cancel_on = raw.get("cancel_on") or []
    cancel_on = [cancel_on] if isinstance(cancel_on, str) else cancel_on
    for i, pattern in enumerate(cancel_on):
        if not _type_known(str(pattern)):
            err(("cancel_on", i), f"unknown event type {pattern!r}")
    missed = raw.get("missed", "skip" if schedule else "run")
    if missed not in ("skip", "run"):
        err(("missed",), "'missed' is 'skip' or 'run'")
    if errors:
        return None, errors
    line = doc.where(path)
    return Rule(id=rule_id, on=[str(p) for p in on], actions=actions, description=str(raw.get("description", "")),
                enabled=bool(raw.get("enabled", True)), when=when, anchor=anchor, steps=steps,
                cancel_on=[str(c) for c in cancel_on], missed=missed, source=line), []


def _type_known(pattern: str) -> bool:
    from hub.events import matches

    return any(matches(pattern, t) for t in ALL_TYPES)


def _schedule(schedule: Any, err: Any) -> tuple[str | None, list[Step]]:
    if not isinstance(schedule, dict):
        err((), "'schedule' is a mapping with 'before:' or 'after:' and 'offsets:'")
        return None, []
    direction = "before" if "before" in schedule else "after" if "after" in schedule else None
    if direction is None:
        err((), "'schedule' needs 'before:' or 'after:' a date field")
        return None, []
    offsets = schedule.get("offsets")
    if not isinstance(offsets, list) or not offsets:
        err(("offsets",), "'offsets' must list durations such as [30d, 7d]")
        return None, []
    steps = []
    for i, offset in enumerate(offsets):
        try:
            steps.append(Step(str(offset), parse_duration(offset), direction))
        except ValueError as exc:
            err(("offsets", i), str(exc))
    return str(schedule[direction]), steps


def _static_param_errors(schema: Any, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Check parameters against the action's schema where they are not templates."""
    if not isinstance(params, dict):
        return [("params", "parameters must be a mapping")]
    try:
        schema().load(params, partial=True)
    except ValidationError as exc:
        out = []
        for field, messages in exc.normalized_messages().items():
            value = params.get(field)
            if isinstance(value, str) and "{" in value:
                continue  # a template: checked when rendered
            out.append((field, "; ".join(map(str, messages if isinstance(messages, list) else [messages]))))
        return out
    required = [name for name, f in schema().fields.items() if f.required and name not in params]
    return [(name, "missing required parameter") for name in required]
