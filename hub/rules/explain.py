"""``hub explain ACTION_ID``: why a planned action exists (rule, file:line, the triggering event, the
condition's inputs as far as they are still known, the rendered parameters) and, if cancelled, what
cancelled it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.kernel.events import CanonicalEvent
from hub.kernel.values import rfc3339
from hub.rules.expressions import Expressions
from hub.rules.planner import context, resolve

if TYPE_CHECKING:
    from hub.runtime import Hub

_PURE_HELPERS = {"timedelta", "parse_time"}
_READING_HELPERS = {"days_since", "usage_ratio"}  # their result depended on the clock or the store


def _event(row: Any) -> CanonicalEvent:
    return CanonicalEvent(type=row.type, time=rfc3339(row.time), provider=row.provider,
                          providereventid=row.provider_event_id, providertype=row.provider_type, data=row.data or {},
                          subject=row.subject, id=row.id)


def _brief(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "type": row.type, "time": rfc3339(row.time), "provider": row.provider,
            "provider_event_id": row.provider_event_id, "provider_type": row.provider_type}


def explain(hub: "Hub", action_id: int) -> dict[str, Any] | None:
    """Everything known about why action ``action_id`` exists; None when there is no such action."""
    from hub.store import Action, Event

    ruleset = hub.rules
    with hub.store.session() as session:
        action = session.get(Action, action_id)
        if action is None:
            return None
        event_row = session.get(Event, action.event_id) if action.event_id else None
        cancel_row = session.get(Event, action.cancelled_by) if action.cancelled_by else None
        rule = ruleset.by_id(action.rule_id) if action.rule_id else None
        out: dict[str, Any] = {
            "action": {"id": action.id, "key": action.key, "name": f"{action.connector}.{action.name}",
                       "status": action.status, "dry_run": action.dry_run, "subject": action.subject,
                       "occurrence": action.occurrence, "step": action.step, "due_at": rfc3339(action.due_at),
                       "attempts": action.attempts, "last_error": action.last_error, "params": action.params,
                       "suppressed": action.suppressed, "note": action.note, "routed_from": action.via,
                       "channel": action.channel, "throttle_key": action.throttle_key,
                       "variant": action.variant, "goal": action.goal,
                       "goal_until": rfc3339(action.goal_until) if action.goal_until else None,
                       "converted_by": action.converted_by},
            "rule": {"id": action.rule_id, "rules_hash": action.rules_hash, "current_rules_hash": ruleset.hash,
                     "changed_since": action.rules_hash != ruleset.hash},
            "event": _brief(event_row),
            "cancelled": None,
        }
        if rule is not None:
            out["rule"].update({"description": rule.description, "source": rule.source, "on": rule.on,
                                "when": rule.when_source, "schedule": _schedule(rule), "throttle":
                                None if rule.throttle is None else
                                {"limit": rule.throttle.limit, "per_days": rule.throttle.per.days}})
        else:
            out["rule"]["source"] = None  # the rule no longer exists in the files in force
        if action.status == "cancelled":
            out["cancelled"] = {"by_event": _brief(cancel_row) or (
                {"id": action.cancelled_by} if action.cancelled_by else None),
                "reason": action.last_error or (f"cancel_on of rule {action.rule_id}" if action.cancelled_by
                                                else None)}
        if rule is not None and event_row is not None and rule.when_source:
            # only what is still as it was when the action was planned: the stored event, the
            # planning time and (if the rules did not change) the vars; never today's profile
            ctx = context(_event(event_row), None, action.created_at, variables=ruleset.vars)
            out["condition"] = _condition(rule.when_source, ctx, rules_changed=action.rules_hash != ruleset.hash)
        else:
            out["condition"] = None
        return out


def _schedule(rule: Any) -> dict[str, Any] | None:
    if rule.anchor is None:
        return None
    return {"anchor": rule.anchor, "direction": rule.steps[0].direction if rule.steps else None,
            "steps": [s.name for s in rule.steps], "missed": rule.missed,
            "send_at": None if rule.send_at is None else f"{rule.send_at.at:%H:%M} ({rule.send_at.timezone} "
                                                            "unless the subscriber's time zone is known)"}


def _condition(source: str, ctx: dict[str, Any], *, rules_changed: bool) -> dict[str, Any]:
    """The condition and the values it read that are still known. It held when the action was
    planned (the action exists). The profile and the helpers' results at that time are not
    recorded: they are named, never re-read from today's profile and shown as the reason."""
    inputs: dict[str, Any] = {}
    not_recorded: list[str] = []
    for path in Expressions().referenced_paths(source, condition=True):
        root = path.split(".")[0]
        if root in _PURE_HELPERS:
            continue
        if root in _READING_HELPERS:
            not_recorded.append(f"{root}(...)")
            continue
        if root == "subscriber" or (root == "vars" and rules_changed):
            not_recorded.append(path)
            continue
        value = resolve(ctx, path)
        inputs[path] = rfc3339(value) if hasattr(value, "tzinfo") else value
    return {"source": source, "inputs": inputs, "not_recorded": not_recorded, "holds": True,
            "note": "it held when the action was planned; values from the stored event, the planning time"
                    + (" (the rules changed since: this is the condition in force now, vars not shown)"
                       if rules_changed else " and the vars")}


def render_text(info: dict[str, Any]) -> str:
    """The explanation as a few readable lines."""
    a, r, e = info["action"], info["rule"], info["event"]
    lines = [f"action {a['id']}  {a['name']}  status={a['status']}{' (dry run)' if a['dry_run'] else ''}",
             f"  key        {a['key']}",
             f"  due        {a['due_at']}  step {a['step']}  subject {a['subject']}"]
    if a.get("routed_from"):
        lines.append(f"  routed     {a['routed_from']} -> {a['name']}")
    if a.get("suppressed"):
        lines.append(f"  suppressed {a['suppressed']}: never sent")
    if a.get("note"):
        lines.append(f"  why        {a['note']}")
    if a.get("variant"):
        lines.append(f"  variant    {a['variant']}")
    if a.get("goal"):
        lines.append(f"  goal       {a['goal']} until {a['goal_until']}: "
                     + (f"converted by event {a['converted_by']}" if a.get("converted_by") else "not (yet) reached"))
    if r.get("source"):
        lines.append(f"rule {r['id']}  at {r['source']}")
        if r.get("description"):
            lines.append(f"  {r['description']}")
        lines.append(f"  on {', '.join(r['on'])}")
        if r.get("schedule"):
            s = r["schedule"]
            lines.append(f"  schedule   {s['direction']} {s['anchor']}: {', '.join(s['steps'])} (missed: {s['missed']})")
    else:
        lines.append(f"rule {r['id']}  (no longer in the rules in force)")
    lines.append(f"  rules version {r['rules_hash']}" + (f" (now {r['current_rules_hash']}: the rules changed "
                                                         "since)" if r["changed_since"] else " (still in force)"))
    if e:
        lines.append(f"because of event {e['id']}  {e['type']} at {e['time']} "
                     f"({e['provider']} {e['provider_type']} {e['provider_event_id']})")
    else:
        lines.append("because of an event that is no longer stored")
    cond = info.get("condition")
    if cond:
        lines.append(f"condition  {cond['source']}")
        for path, value in cond["inputs"].items():
            lines.append(f"  {path} = {value!r}")
        if cond["not_recorded"]:
            lines.append(f"  not recorded when planned: {', '.join(cond['not_recorded'])}")
        lines.append(f"  ({cond['note']})")
    elif r.get("source"):
        lines.append("condition  (none: the rule runs on every matching event)")
    lines.append("params")
    for name, value in (a["params"] or {}).items():
        lines.append(f"  {name}: {value!r}")
    if info.get("cancelled"):
        c = info["cancelled"]
        by = c.get("by_event")
        who = f"event {by['id']}" + (f" {by['type']} at {by['time']}" if by and by.get("type") else "") if by else "-"
        lines.append(f"cancelled by {who}: {c.get('reason') or ''}".rstrip(": "))
    if a.get("last_error") and a["status"] != "cancelled":
        lines.append(f"last error {a['last_error']}")
    return "\n".join(lines)
