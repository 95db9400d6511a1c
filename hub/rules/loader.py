"""Load and validate rules files. Every problem is reported at once as ``file:line:col: message``."""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from datetime import time
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from jinja2 import nodes
from marshmallow import ValidationError

from hub.events import ALL_TYPES, matches

from .expressions import Expressions, TemplateSyntaxError
from .model import CancelOn, CompiledAction, Rule, RuleSet, SendAt, Step, Throttle, parse_duration
from .yamlpos import Located, LocatedError, load

RULE_KEYS = {"id", "description", "enabled", "on", "when", "actions", "schedule", "send_at", "cancel_on",
             "throttle", "missed"}
#: top-level keys of a file under rules/: ``segments``/``tiers``/``loyalty`` belong to the profiles
#: engine (rules/segments.yaml) and are read there, not here
TOP_LEVEL_KEYS = {"rules", "vars"}
FOREIGN_TOP_LEVEL_KEYS = {"segments", "tiers", "loyalty", "alerts"}  # alerts: hub/alerts.py
#: names a condition or template may start from (event parts, profile, helpers)
CONTEXT_ROOTS = {"event", "subscriber", "subscription", "previous", "invoice", "payment", "order", "usage",
                 "consent", "message", "tier", "segment", "mrr", "step", "now", "vars", "days_since",
                 "usage_ratio", "timedelta", "parse_time", "range", "dict", "lipsum", "cycler", "joiner",
                 "namespace", "true", "false", "none", "True", "False", "None", "loop"}
ANCHOR_ROOTS = {"event", "subscriber", "subscription", "invoice", "payment", "order", "usage", "previous", "tier"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

Err = Callable[[tuple[Any, ...], str], None]


def as_paths(paths: str | Path | Iterable[str | Path] | None) -> list[str]:
    """HUB_RULES_PATH as given: a comma-separated string (the setting's default) or a list."""
    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        return [part.strip() for part in str(paths).split(",") if part.strip()]
    return [str(p) for p in paths]


def rule_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, as_paths(paths)):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()))
        elif p.exists():
            files.append(p)
    return files


def load_rules(paths: str | Path | Iterable[str | Path], environ: dict[str, str] | None = None) -> RuleSet:
    """Compile every rules file under ``paths``; raise LocatedError listing every problem."""
    paths = as_paths(paths)
    files = rule_files(paths)
    missing = [str(p) for p in paths if not Path(p).exists()]
    env = os.environ if environ is None else environ
    digest = hashlib.sha256()
    errors: list[str] = [f"{m}:1:1: no such file or folder" for m in missing]
    docs: list[Located] = []
    file_hashes: dict[str, str] = {}
    for path in files:
        text = path.read_text()
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        file_hashes[str(path)] = hashlib.sha256(text.encode()).hexdigest()[:16]
        try:
            docs.append(load(text, str(path)))
        except LocatedError as exc:
            errors.extend(exc.errors)
    # vars first (one shared block, usually rules/vars.yaml), so every file's rules can use them
    variables: dict[str, Any] = {}
    var_where: dict[str, str] = {}
    for doc in docs:
        for name, value, problem in _file_vars(doc, env):
            if problem:
                errors.append(problem)
            elif name in variables:
                errors.append(f"{doc.where(('vars', name))}: var {name!r} is already defined at {var_where[name]}")
            else:
                variables[name], var_where[name] = value, doc.where(("vars", name))
    rules: list[Rule] = []
    compiler = _Compiler(variables)
    for doc in docs:
        for rule, problems in compiler.compile_file(doc):
            errors.extend(problems)
            if rule is not None:
                rules.append(rule)
    errors.extend(compiler.duplicates)
    if errors:
        raise LocatedError(errors)
    return RuleSet(rules=rules, hash=digest.hexdigest()[:16], files=[str(f) for f in files], vars=variables,
                   file_hashes=file_hashes)


def _file_vars(doc: Located, env: Any) -> Iterable[tuple[str, Any, str | None]]:
    data = doc.data
    if not isinstance(data, dict) or data.get("vars") is None:
        return
    if not isinstance(data["vars"], dict):
        yield "", None, f"{doc.where(('vars',))}: 'vars' is a mapping of name: value"
        return
    for name, value in data["vars"].items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            yield str(name), None, f"{doc.where(('vars', name))}: var names are letters, digits and _ ({name!r})"
            continue
        try:
            yield str(name), _substitute(value, env), None
        except KeyError as exc:
            yield str(name), None, (f"{doc.where(('vars', name))}: environment variable {exc.args[0]} is not set "
                                    f"(write ${{{exc.args[0]}:-default}} to give a default)")


def _substitute(value: Any, env: Any) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` from the environment; a whole-string reference keeps YAML's
    type (``${HUB_RETRIES:-true}`` is a boolean)."""
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return str(env[name])
        if default is None:
            raise KeyError(name)
        return default

    whole = _ENV_REF.fullmatch(value.strip())
    text = _ENV_REF.sub(one, value)
    if whole:
        try:
            return yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            return text
    return text


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_known(pattern: str) -> bool:
    return any(matches(pattern, t) for t in ALL_TYPES)


class _Compiler:
    def __init__(self, variables: dict[str, Any]):
        self.vars = variables
        self.exprs = Expressions()
        self.seen: dict[str, str] = {}
        self.duplicates: list[str] = []

    def compile_file(self, doc: Located) -> Iterable[tuple[Rule | None, list[str]]]:
        data = doc.data
        if data is None:
            return
        if not isinstance(data, dict):
            yield None, [f"{doc.where(())}: a rules file is a mapping with a 'rules:' list (and optional 'vars:')"]
            return
        unknown = [k for k in data if k not in TOP_LEVEL_KEYS | FOREIGN_TOP_LEVEL_KEYS]
        for key in unknown:
            allowed = ", ".join(sorted(TOP_LEVEL_KEYS | FOREIGN_TOP_LEVEL_KEYS))
            yield None, [f"{doc.where((key,))}: unknown top-level key {key!r}"
                         f"{_did_you_mean(str(key), TOP_LEVEL_KEYS | FOREIGN_TOP_LEVEL_KEYS)} (allowed: {allowed})"]
        raw_rules = data.get("rules")
        if raw_rules is None:
            return
        if not isinstance(raw_rules, list):
            yield None, [f"{doc.where(('rules',))}: 'rules' must be a list of rules"]
            return
        for index, raw in enumerate(raw_rules):
            yield self.compile_rule(doc, ("rules", index), raw)

    # -- one rule --------------------------------------------------------------------------------
    def compile_rule(self, doc: Located, path: tuple[Any, ...], raw: Any) -> tuple[Rule | None, list[str]]:
        errors: list[str] = []

        def err(sub: tuple[Any, ...], message: str) -> None:
            errors.append(f"{doc.where(path + sub)}: {message}")

        if not isinstance(raw, dict):
            err((), "a rule is a mapping with at least 'id', 'on' and 'actions'")
            return None, errors
        for key in raw.keys() - RULE_KEYS:
            err((key,), f"unknown key {key!r}{_did_you_mean(str(key), RULE_KEYS)} "
                        f"(allowed: {', '.join(sorted(RULE_KEYS))})")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            err(("id",), "'id' is required and must be a string")
            rule_id = f"<rule {path[-1]}>"
        elif rule_id in self.seen:
            self.duplicates.append(f"{doc.where(path)}: duplicate rule id {rule_id!r} "
                                   f"(first defined at {self.seen[rule_id]})")
        else:
            self.seen[rule_id] = doc.where(path)
        on = self._event_types(raw.get("on"), ("on",), err, required=True)
        enabled = self._static(raw.get("enabled", True), ("enabled",), err)
        if not isinstance(enabled, bool):
            err(("enabled",), f"'enabled' must be true or false (got {enabled!r})")
        when, when_source = None, None
        if raw.get("when") is not None:
            when_source = str(raw["when"])
            when = self._condition(when_source, ("when",), err)
        schedule = raw.get("schedule")
        anchor, steps = None, [Step("now", parse_duration(0), "at")]
        if schedule is not None:
            anchor, steps = self._schedule(schedule, lambda sub, m: err(("schedule",) + sub, m))
        steps_have_actions = bool(steps) and all(s.actions is not None for s in steps)
        actions: list[CompiledAction] = []
        if raw.get("actions") is not None or not steps_have_actions:
            actions = self._actions(raw.get("actions"), ("actions",), err)
        cancel_on = self._cancel_on(raw.get("cancel_on"), err)
        throttle = self._throttle(raw.get("throttle"), err) if raw.get("throttle") is not None else None
        send_at = self._send_at(raw.get("send_at"), err) if raw.get("send_at") is not None else None
        missed = self._static(raw.get("missed", "skip" if schedule is not None else "run"), ("missed",), err)
        if missed not in ("skip", "run"):
            err(("missed",), f"'missed' is 'skip' or 'run' (got {missed!r})")
        if errors:
            return None, errors
        return Rule(id=rule_id, on=on, actions=actions, description=str(raw.get("description") or "").strip(),
                    enabled=bool(enabled), when=when, when_source=when_source, anchor=anchor, steps=steps,
                    cancel_on=cancel_on, throttle=throttle, send_at=send_at, missed=str(missed),
                    source=doc.where(path), file=doc.filename), []

    # -- parts -----------------------------------------------------------------------------------
    def _static(self, value: Any, where: tuple[Any, ...], err: Err) -> Any:
        """Fields that shape a rule (enabled, offsets, throttle, send_at) are evaluated once, at load,
        with only ``vars`` in scope: ``offsets: "{{ vars.renewal_reminders }}"``."""
        if isinstance(value, dict):
            return {k: self._static(v, where + (k,), err) for k, v in value.items()}
        if isinstance(value, list):
            return [self._static(v, where + (i,), err) for i, v in enumerate(value)]
        if not isinstance(value, str) or "{{" not in value:
            return value
        self._check_paths(value, where, err, roots={"vars"})
        try:
            return self.exprs.compile_value(value)({"vars": self.vars})
        except TemplateSyntaxError as exc:
            err(where, f"template does not compile: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a bad expression is a rules error, not a crash
            err(where, f"cannot evaluate {value!r}: {exc}")
        return None

    def _check_paths(self, source: Any, where: tuple[Any, ...], err: Err,
                     roots: set[str] = CONTEXT_ROOTS, condition: bool = False) -> None:
        """Unknown names (typos such as ``subscripton.status``) and undefined vars."""
        stored = _stored_names(self.exprs, source)
        for dotted in self.exprs.referenced_paths(source, condition=condition):
            root, _, rest = dotted.partition(".")
            if root in stored:
                continue
            if root not in roots:
                err(where, f"unknown name {root!r}{_did_you_mean(root, roots)}")
            elif root == "vars" and rest:
                name = rest.split(".")[0]
                if name not in self.vars:
                    err(where, f"undefined var {name!r}{_did_you_mean(name, self.vars)}")

    def _condition(self, source: str, where: tuple[Any, ...], err: Err) -> Any:
        try:
            compiled = self.exprs.compile_condition(source)
        except TemplateSyntaxError as exc:
            err(where, f"condition does not compile: {exc.message}")
            return None
        self._check_paths(source, where, err, condition=True)
        return compiled

    def _event_types(self, value: Any, where: tuple[Any, ...], err: Err, *, required: bool) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if items is None and not required:
            return []
        if not items or not isinstance(items, list):
            err(where, "must list canonical event types (globs such as subscription.* allowed)")
            return []
        out = []
        for i, pattern in enumerate(items):
            if not isinstance(pattern, str) or not _type_known(pattern):
                err(where + (i,), f"unknown event type {pattern!r}{_did_you_mean(str(pattern), ALL_TYPES)}")
            else:
                out.append(pattern)
        return out

    def _actions(self, raw_actions: Any, where: tuple[Any, ...], err: Err) -> list[CompiledAction]:
        from connectors import REGISTRY, action_spec

        if not isinstance(raw_actions, list) or not raw_actions:
            err(where, "'actions' must be a non-empty list of '<connector>.<action>: {params}'")
            return []
        actions: list[CompiledAction] = []
        for i, item in enumerate(raw_actions):
            at = where + (i,)
            if not isinstance(item, dict) or len(item) != 1:
                err(at, "each action is a single '<connector>.<action>: {params}' mapping")
                continue
            qualified, params = next(iter(item.items()))
            found = action_spec(str(qualified))
            if found is None:
                known = [f"{n}.{a}" for n, c in REGISTRY.items() for a in c.actions]
                err(at, f"unknown action {qualified!r}{_did_you_mean(str(qualified), known)}")
                continue
            connector, spec = found
            params = {} if params is None else params
            if not isinstance(params, dict):
                err(at + (qualified,), f"{qualified}: parameters must be a mapping")
                continue
            try:
                compiled = self.exprs.compile_value(params)
            except TemplateSyntaxError as exc:
                err(at + (qualified,), f"template does not compile: {exc.message}")
                continue
            self._check_paths(params, at + (qualified,), err)
            for field, message in _static_param_errors(spec.schema, params):
                err(at + (qualified, field), f"{qualified}: {field}: {message}")
            actions.append(CompiledAction(connector.name, spec.name, compiled, params))
        return actions

    def _schedule(self, schedule: Any, err: Err) -> tuple[str | None, list[Step]]:
        if not isinstance(schedule, dict):
            err((), "'schedule' is a mapping with 'before:' or 'after:' a date field and 'offsets:' or 'steps:'")
            return None, []
        for key in schedule.keys() - {"before", "after", "offsets", "steps"}:
            err((key,), f"unknown key {key!r} in 'schedule' (allowed: before, after, offsets, steps)")
        directions = [d for d in ("before", "after") if d in schedule]
        if len(directions) != 1:
            err((), "'schedule' needs exactly one of 'before:' or 'after:' a date field")
            return None, []
        direction = directions[0]
        anchor = schedule[direction]
        if not isinstance(anchor, str) or anchor.split(".")[0] not in ANCHOR_ROOTS or "." not in anchor:
            err((direction,), f"{direction!r} names a date field such as subscription.current_period_end or "
                              f"event.time (got {anchor!r})")
        if ("offsets" in schedule) == ("steps" in schedule):
            err((), "'schedule' needs either 'offsets:' or 'steps:'")
            return None, []
        steps: list[Step] = []
        if "offsets" in schedule:
            offsets = self._static(schedule["offsets"], ("offsets",), err)
            if not isinstance(offsets, list) or not offsets:
                err(("offsets",), "'offsets' must list durations such as [30d, 7d]")
                return None, []
            for i, offset in enumerate(offsets):
                offset = self._static(offset, ("offsets", i), err)
                try:
                    steps.append(Step(str(offset), parse_duration(offset), direction))
                except ValueError as exc:
                    err(("offsets", i), str(exc))
        else:
            raw_steps = schedule["steps"]
            if not isinstance(raw_steps, list) or not raw_steps:
                err(("steps",), "'steps' must list steps, each with 'at:' and 'actions:'")
                return None, []
            for i, raw in enumerate(raw_steps):
                if not isinstance(raw, dict) or "at" not in raw:
                    err(("steps", i), "each step is a mapping with 'at:' (an offset) and 'actions:'")
                    continue
                for key in raw.keys() - {"at", "name", "actions"}:
                    err(("steps", i, key), f"unknown key {key!r} in a step (allowed: at, name, actions)")
                at = self._static(raw["at"], ("steps", i, "at"), err)
                try:
                    offset = parse_duration(at)
                except ValueError as exc:
                    err(("steps", i, "at"), str(exc))
                    continue
                actions = None
                if raw.get("actions") is not None:
                    actions = self._actions(raw["actions"], ("steps", i, "actions"), err)
                steps.append(Step(str(raw.get("name") or at), offset, direction, actions))
        names = [s.name for s in steps]
        for i, name in enumerate(names):
            if name in names[:i]:
                err(("steps" if "steps" in schedule else "offsets", i), f"duplicate step {name!r}")
        return anchor, steps

    def _cancel_on(self, value: Any, err: Err) -> list[CancelOn]:
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        out: list[CancelOn] = []
        for i, item in enumerate(items):
            where = ("cancel_on", i) if isinstance(value, list) else ("cancel_on",)
            if isinstance(item, str):
                out.append(CancelOn(self._event_types(item, where, err, required=True)))
            elif isinstance(item, dict) and "on" in item and not (item.keys() - {"on", "when"}):
                types = self._event_types(item["on"], where + ("on",), err, required=True)
                when = None
                if item.get("when") is not None:
                    when = self._condition(str(item["when"]), where + ("when",), err)
                out.append(CancelOn(types, when, None if item.get("when") is None else str(item["when"])))
            else:
                err(where, "each cancel_on entry is an event type or {on: <types>, when: <condition>}")
        return out

    def _throttle(self, value: Any, err: Err) -> Throttle | None:
        value = self._static(value, ("throttle",), err)
        try:
            if isinstance(value, dict):
                if value.keys() - {"limit", "per"} or "per" not in value:
                    raise ValueError("'throttle' is a window (30d) or {limit: 3, per: 21d}")
                limit = int(value.get("limit", 1))
                if limit < 1:
                    raise ValueError("'throttle.limit' must be at least 1")
                return Throttle(limit, parse_duration(value["per"]))
            return Throttle(1, parse_duration(value))
        except (ValueError, TypeError) as exc:
            err(("throttle",), str(exc))
            return None

    def _send_at(self, value: Any, err: Err) -> SendAt | None:
        value = self._static(value, ("send_at",), err)
        tz = "UTC"
        if isinstance(value, dict):
            tz = str(self._static(value.get("timezone", "UTC"), ("send_at", "timezone"), err))
            value = value.get("time")
        if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 09:00 unquoted as 540
            value = f"{value // 60:02d}:{value % 60:02d}"
        match = _TIME_OF_DAY.match(str(value))
        if not match:
            err(("send_at",), f"'send_at' is a local time of day such as \"09:00\" (got {value!r})")
            return None
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            err(("send_at", "timezone"), f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)")
            return None
        return SendAt(time(int(match.group(1)), int(match.group(2))), tz)


def _stored_names(exprs: Expressions, source: Any) -> set[str]:
    """Names a template assigns itself (``{% for item in ... %}``, ``{% set x = ... %}``)."""
    from .expressions import _strings

    out: set[str] = set()
    for text in _strings(source):
        if "{%" not in text:
            continue
        try:
            tree = exprs.env.parse(text)
        except TemplateSyntaxError:
            continue
        out.update(n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param"))
    return out


def _static_param_errors(schema: Any, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Check parameters against the action's schema where they are not templates."""
    try:
        schema().load(params, partial=True)
    except ValidationError as exc:
        out = []
        for field, messages in exc.normalized_messages().items():
            value = params.get(field)
            if _templated(value):
                continue  # a template: its type is known only when rendered
            out.append((str(field), "; ".join(map(str, messages if isinstance(messages, list) else [messages]))))
        return out
    required = [name for name, f in schema().fields.items() if f.required and name not in params]
    return [(name, "missing required parameter") for name in required]


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False
