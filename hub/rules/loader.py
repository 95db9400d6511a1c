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

from hub.kernel.events import ALL_TYPES, matches
from hub.rules import billing
from hub.rules.expressions import Expressions, TemplateSyntaxError
from hub.rules.model import (
    SCOPE_NAMES,
    CancelOn,
    CompiledAction,
    Policy,
    QuietHours,
    Rule,
    RuleSet,
    SendAt,
    Step,
    Throttle,
    parse_duration,
)
from hub.rules.vocabulary import known_fields
from hub.rules.yamlpos import Located, LocatedError, load

RULE_KEYS = {"id", "description", "enabled", "on", "when", "actions", "schedule", "send_at", "cancel_on",
             "throttle", "missed", "per", "channel", "split", "goal"}
#: top-level keys of a file under rules/: ``segments``/``tiers``/``loyalty`` belong to the profiles
#: engine (rules/segments.yaml) and are read there, not here
TOP_LEVEL_KEYS = {"rules", "vars"}
FOREIGN_TOP_LEVEL_KEYS = {"segments", "tiers", "loyalty", "alerts"}  # alerts: hub/alerts.py
#: names a condition or template may start from (event parts, profile, helpers)
CONTEXT_ROOTS = {"event", "subscriber", "subscription", "previous", "invoice", "payment", "order", "usage",
                 "consent", "message", "tier", "segment", "mrr", "step", "now", "vars", "days_since",
                 "usage_ratio", "timedelta", "parse_time", "range", "dict", "cycler", "joiner", "variant",
                 "namespace", "true", "false", "none", "True", "False", "None", "loop"}
ANCHOR_ROOTS = {"event", "subscriber", "subscription", "invoice", "payment", "order", "usage", "previous", "tier"}
#: environment variables rules may read without being listed in HUB_RULES_ENV
ENV_PREFIXES = ("HUB_RULES_", "HUB_PLAYBOOK_")
ENV_NAMES = frozenset({"HUB_DEFAULT_TIMEZONE"})  # the merchant's zone: the playbook's send times use it
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
    policy = _policy(variables, var_where, errors)
    if errors:
        raise LocatedError(errors)
    return RuleSet(rules=rules, hash=digest.hexdigest()[:16], files=[str(f) for f in files], vars=variables,
                   file_hashes=file_hashes, policy=policy,
                   default_timezone=env.get("HUB_DEFAULT_TIMEZONE") or "UTC")


def _policy(variables: dict[str, Any], where: dict[str, str], errors: list[str]) -> Policy:
    """The playbook-wide limits in ``vars``: ``frequency_caps: {marketing: 16h}``,
    ``quiet_hours: {start: "21:00", end: "08:00", channels: [marketing]}``, ``missed_horizon: 1d``."""
    policy = Policy()
    caps = variables.get("frequency_caps")
    if caps is not None:
        if not isinstance(caps, dict):
            errors.append(f"{where['frequency_caps']}: 'frequency_caps' maps a channel to a window, e.g. "
                          "{marketing: 16h}")
        else:
            for channel, window in caps.items():
                try:
                    policy.caps[str(channel)] = parse_duration(window)
                except ValueError as exc:
                    errors.append(f"{where['frequency_caps']}: frequency_caps.{channel}: {exc}")
    quiet = variables.get("quiet_hours")
    if quiet is not None:
        times = [_time_of_day(quiet.get(k)) if isinstance(quiet, dict) else None for k in ("start", "end")]
        channels = quiet.get("channels") if isinstance(quiet, dict) else None
        if None in times or not isinstance(channels, list) or not channels:
            errors.append(f"{where['quiet_hours']}: 'quiet_hours' is {{start: \"21:00\", end: \"08:00\", "
                          "channels: [marketing]}")
        else:
            policy.quiet = QuietHours(times[0], times[1], frozenset(map(str, channels)))  # type: ignore[arg-type]
    if variables.get("missed_horizon") is not None:
        try:
            policy.missed_horizon = parse_duration(variables["missed_horizon"])
        except ValueError as exc:
            errors.append(f"{where['missed_horizon']}: missed_horizon: {exc}")
    return policy


def _time_of_day(value: Any) -> time | None:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 09:00 unquoted as 540
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = _TIME_OF_DAY.match(str(value))
    return time(int(match.group(1)), int(match.group(2))) if match else None


def _file_vars(doc: Located, env: Any) -> Iterable[tuple[str, Any, str | None]]:
    data = doc.data
    if not isinstance(data, dict) or data.get("vars") is None:
        return
    if not isinstance(data["vars"], dict):
        yield "", None, f"{doc.where(('vars',))}: 'vars' is a mapping of name: value"
        return
    readable = _readable_env(env)
    for name, value in data["vars"].items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            yield str(name), None, f"{doc.where(('vars', name))}: var names are letters, digits and _ ({name!r})"
            continue
        refused = sorted({ref for ref in _env_refs(value) if not readable(ref)})
        if refused:
            yield str(name), None, (f"{doc.where(('vars', name))}: rules may not read ${{{refused[0]}}}: only "
                                    f"variables starting with {' or '.join(ENV_PREFIXES)} or listed in "
                                    f"HUB_RULES_ENV, and never a secret setting")
            continue
        try:
            yield str(name), _substitute(value, env), None
        except KeyError as exc:
            yield str(name), None, (f"{doc.where(('vars', name))}: environment variable {exc.args[0]} is not set "
                                    f"(write ${{{exc.args[0]}:-default}} to give a default)")


def _readable_env(env: Any) -> Callable[[str], bool]:
    """Whether a rules file may read a variable: ENV_PREFIXES and HUB_RULES_ENV, never a secret
    setting (a rule's vars end up in planned actions, which /api/actions shows)."""
    from hub.config import declared_settings

    secrets = {s.name for s in declared_settings() if s.secret}
    listed = {n.strip() for n in str(env.get("HUB_RULES_ENV") or "").split(",") if n.strip()}
    return lambda name: name not in secrets and (name.startswith(ENV_PREFIXES) or name in ENV_NAMES or name in listed)


def _env_refs(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _env_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _env_refs(v)
    elif isinstance(value, str):
        yield from (m.group(1) for m in _ENV_REF.finditer(value))


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
        per, per_source = None, None
        if raw.get("per") is not None:
            per_source = str(raw["per"])
            per = self._key(per_source, ("per",), err)
        channel = self._static(raw.get("channel"), ("channel",), err)
        if channel is not None and not (isinstance(channel, str) and re.match(r"^[a-z][a-z0-9_-]*$", channel)):
            err(("channel",), f"'channel' is a name such as marketing or transactional (got {channel!r})")
        split = self._split(raw.get("split"), err) if raw.get("split") is not None else None
        goal = self._goal(raw.get("goal"), err) if raw.get("goal") is not None else None
        if errors:
            return None, errors
        return Rule(id=rule_id, on=on, actions=actions, description=str(raw.get("description") or "").strip(),
                    enabled=bool(enabled), when=when, when_source=when_source, anchor=anchor, steps=steps,
                    cancel_on=cancel_on, throttle=throttle, send_at=send_at, missed=str(missed),
                    source=doc.where(path), file=doc.filename, per=per, per_source=per_source,
                    channel=channel, split=split, goal=goal), []

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
            elif rest and root != "vars" and (known := known_fields(root)):
                name = rest.split(".")[0]
                if name not in known:
                    err(where, f"unknown field {root}.{name}{_did_you_mean(name, known)} (known fields of "
                               f"{root} that an event lacks read as empty; see rules/README.md)")
            elif root == "vars" and rest:
                name = rest.split(".")[0]
                if name not in self.vars:
                    err(where, f"undefined var {name!r}{_did_you_mean(name, self.vars)}")

    def _split(self, value: Any, err: Err) -> dict[str, int] | None:
        """``{a: 50, b: 50}``: variant names and positive whole weights."""
        value = self._static(value, ("split",), err)
        if not isinstance(value, dict) or len(value) < 2 or not all(
                re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", str(k)) and isinstance(v, int) and not isinstance(v, bool)
                and v > 0 for k, v in value.items()):
            err(("split",), f"'split' names two or more variants with positive whole weights, e.g. "
                            f"{{a: 50, b: 50}} (got {value!r})")
            return None
        return {str(k): int(v) for k, v in value.items()}

    def _goal(self, value: Any, err: Err) -> tuple[str, Any] | None:
        """``subscription.renewed within 14d``."""
        value = self._static(value, ("goal",), err)
        match = re.match(r"^\s*(\S+)\s+within\s+(\S+)\s*$", str(value))
        if not match:
            err(("goal",), f"'goal' is '<event type> within <duration>', e.g. subscription.renewed within 14d "
                           f"(got {value!r})")
            return None
        type_, window = match.groups()
        if type_ not in ALL_TYPES:
            err(("goal",), f"unknown event type {type_!r}{_did_you_mean(type_, ALL_TYPES)}")
            return None
        try:
            return type_, parse_duration(window)
        except ValueError as exc:
            err(("goal",), str(exc))
            return None

    def _key(self, source: str, where: tuple[Any, ...], err: Err) -> Any:
        """``subscriber``, ``subscription``, ``invoice`` or a template (``"{{ order.id }}"``)."""
        text = SCOPE_NAMES.get(source, source)
        if "{{" not in text:
            err(where, f"a key is subscriber, subscription, invoice or an expression such as "
                       f"\"{{{{ invoice.id }}}}\" (got {source!r}){_did_you_mean(source, SCOPE_NAMES)}")
            return None
        try:
            compiled = self.exprs.compile_value(text)
        except TemplateSyntaxError as exc:
            err(where, f"template does not compile: {exc.message}")
            return None
        self._check_paths(text, where, err)
        return compiled

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
            canonical = billing.spec(str(qualified))
            found = action_spec(str(qualified)) if canonical is None else None
            if canonical is None and found is None:
                known = [f"{n}.{a}" for n, c in REGISTRY.items() for a in c.actions]
                known += [f"{billing.CONNECTOR}.{a}" for a in billing.ACTIONS]
                err(at, f"unknown action {qualified!r}{_did_you_mean(str(qualified), known)}")
                continue
            connector_name, action_name, schema = (
                (billing.CONNECTOR, canonical.name, canonical.schema) if canonical is not None
                else (found[0].name, found[1].name, found[1].schema))
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
            for field, message in _static_param_errors(schema, params):
                err(at + (qualified, field), f"{qualified}: {field}: {message}")
            actions.append(CompiledAction(connector_name, action_name, compiled, params))
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
        key_source = value.get("key") if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "key"}
        value = self._static(value, ("throttle",), err)
        try:
            if isinstance(value, dict):
                if value.keys() - {"limit", "per"} or "per" not in value:
                    raise ValueError("'throttle' is a window (30d) or {limit: 3, per: 21d, key: invoice}")
                limit = int(value.get("limit", 1))
                if limit < 1:
                    raise ValueError("'throttle.limit' must be at least 1")
                key = None
                if key_source is not None and key_source != "subscriber":
                    key = self._key(str(key_source), ("throttle", "key"), err)
                return Throttle(limit, parse_duration(value["per"]), key, str(key_source or "subscriber"))
            return Throttle(1, parse_duration(value))
        except (ValueError, TypeError) as exc:
            err(("throttle",), str(exc))
            return None

    def _send_at(self, value: Any, err: Err) -> SendAt | None:
        value = self._static(value, ("send_at",), err)
        tz = ""  # none given: the merchant's zone (HUB_DEFAULT_TIMEZONE)
        if isinstance(value, dict):
            tz = str(self._static(value.get("timezone", ""), ("send_at", "timezone"), err))
            value = value.get("time")
        at = _time_of_day(value)
        if at is None:
            err(("send_at",), f"'send_at' is a local time of day such as \"09:00\" (got {value!r})")
            return None
        try:
            ZoneInfo(tz) if tz else None
        except (ZoneInfoNotFoundError, ValueError):
            err(("send_at", "timezone"), f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)")
            return None
        return SendAt(at, tz)


def _stored_names(exprs: Expressions, source: Any) -> set[str]:
    """Names a template assigns itself (``{% for item in ... %}``, ``{% set x = ... %}``)."""
    from hub.rules.expressions import _strings

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
