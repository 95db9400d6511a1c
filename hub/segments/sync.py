"""Sync segment membership and profile fields to the marketing tools, by difference.

Each thing the hub keeps in a tool for a subscriber is a *target*: ``klaviyo:list:<id>``,
``hubspot:list:<id>``, ``activecampaign:tag:<tag>``, ``activecampaign:list:<id>`` (membership, True or
False), ``<tool>:property:<name>`` and ``activecampaign:field:<id>`` (a value). ``segment_sync_state``
remembers the value last planned per subscriber and target; only a difference plans an outbox
action, one per subscriber and target (property targets of one tool share one call), with a key
unique to that change, so each member's outcome is recorded and a failure is retried alone.
Whether a change was confirmed is the status of its action.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import connectors
from connectors.base import SyncTarget
from hub.outbound import outbox
from hub.rules import PlannedAction
from hub.segments.config import SegmentConfig
from hub.store import Action
from hub.store.models import ActionStatus
from hub.store.subscriber_models import SyncState

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.segments.engine import Change

RULE_ID = "segment-sync"
_KEY_NAMESPACE = uuid.UUID("3f0c1b1e-5d0a-4c36-9a0e-7c2f4e1d8b20")
#: a target is stored as "tool:kind:ref" with the value kinds in the singular
_STORED_KIND = {"property": "properties", "field": "fields"}


def _sync_target(tool: str, kind: str) -> SyncTarget | None:
    return connectors.sync_target(tool, _STORED_KIND.get(kind, kind))


def desired(config: SegmentConfig, change: "Change") -> dict[str, Any]:
    """Every target's value for this subscriber now (segment sync and profile fields)."""
    members = set(change.result.segments)
    out: dict[str, Any] = {}
    for seg in config.segments:
        inside = seg.id in members
        for tool, spec in (seg.sync or {}).items():
            for kind in ("list", "tag"):
                if spec.get(kind) is not None:
                    out[f"{tool}:{kind}:{spec[kind]}"] = inside
            for name in spec.get("properties") or []:
                out[f"{tool}:property:{name}"] = inside
            for name in spec.get("fields") or []:
                out[f"{tool}:field:{name}"] = "true" if inside else "false"
    for target, expression in config.profile_values.items():
        value = expression(change.result.context)
        out[target] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return out


def _segment_of(config: SegmentConfig, target: str) -> str | None:
    tool, kind, ref = target.split(":", 2)
    for seg in config.segments:
        spec = (seg.sync or {}).get(tool) or {}
        if spec.get(kind) == ref or ref in (spec.get("properties") or []) or ref in (spec.get("fields") or []):
            return seg.id
    return None


@dataclass
class Planned:
    target: str
    value: Any
    generation: int


def plan(hub: "Hub", session: Session, config: SegmentConfig, changes: Sequence["Change"], cause: str | None,
         now: datetime, *, force: Sequence[str] = ()) -> list[int]:
    """Plan the actions that bring each tool to the desired values (differences only). ``force``:
    targets to send again even when the hub believes they are in sync (reconcile --repair)."""
    if not any(seg.sync for seg in config.segments) and not config.profile_values:
        return []
    dry = {name for name, c in connectors.REGISTRY.items() if c.dry_run(hub.settings)}
    ids: list[int] = []
    # a sweep's changes: everyone's sync state in a few queries, not one per subscriber
    held_by = _held(session, [c.row.id for c in changes]) if len(changes) > 1 else None
    for change in changes:
        want = desired(config, change)
        if not want:
            continue
        sid = change.row.id
        if held_by is not None:
            held = held_by.get(sid, {})
        else:
            held = {s.target: s for s in session.execute(select(SyncState).where(SyncState.subscriber_id == sid))
                    .scalars()}
        todo: list[Planned] = []
        for target, value in want.items():
            state = held.get(target)
            if state is None and not value and target not in force:
                continue  # never sent, nothing to take away
            if state is not None and state.value == value and target not in force:
                continue
            generation = (state.generation if state else 0) + 1
            todo.append(Planned(target, value, generation))
        if not todo:
            continue
        actions = _actions(sid, todo, cause, config.hash, now)
        for _, rows in actions:
            for p in rows:
                state = held.get(p.target)
                key = next(a.key for a, r in actions if p in r)
                if state is None:
                    state = SyncState(subscriber_id=sid, target=p.target, segment=_segment_of(config, p.target),
                                      generation=0)
                    session.add(state)
                elif state.action_key:  # a change not yet sent is superseded by this one
                    session.execute(update(Action).where(Action.key == state.action_key,
                                                         Action.status == ActionStatus.SCHEDULED)
                                    .values(status=ActionStatus.CANCELLED, updated_at=now,
                                            last_error="superseded by a newer segment sync"))
                state.value, state.generation, state.action_key, state.updated_at = p.value, p.generation, key, now
        session.flush()
        ids.extend(outbox.write_planned(session, [a for a, _ in actions], subscriber_id=sid,
                                        dry_run_connectors=dry, anchored_rules=set()))
    return ids


def _held(session: Session, subscriber_ids: Sequence[int], chunk: int = 5000) -> dict[int, dict[str, SyncState]]:
    out: dict[int, dict[str, SyncState]] = {}
    for start in range(0, len(subscriber_ids), chunk):
        for state in session.execute(select(SyncState).where(
                SyncState.subscriber_id.in_(subscriber_ids[start:start + chunk]))).scalars():
            out.setdefault(state.subscriber_id, {})[state.target] = state
    return out


def _actions(sid: int, todo: list[Planned], cause: str | None, rules_hash: str, now: datetime
             ) -> list[tuple[PlannedAction, list[Planned]]]:
    out: list[tuple[PlannedAction, list[Planned]]] = []
    grouped: dict[str, list[Planned]] = {}
    for p in todo:
        tool, kind, ref = p.target.split(":", 2)
        target = _sync_target(tool, kind)
        if target is None:
            continue  # a tool or kind no connector offers any more: nothing to send
        if target.add:
            out.append((_planned(sid, tool, target.add if p.value else target.remove, {target.param: ref}, [p],
                                 cause, rules_hash, now), [p]))
        elif target.param:
            out.append((_planned(sid, tool, target.set, {target.param: ref, "value": p.value}, [p], cause,
                                 rules_hash, now), [p]))
        else:
            grouped.setdefault(tool, []).append(p)
    for tool, rows in grouped.items():
        props = {p.target.split(":", 2)[2]: p.value for p in rows}
        out.append((_planned(sid, tool, _sync_target(tool, "properties").set, {"properties": props}, rows, cause,
                             rules_hash, now), rows))
    return out


def _planned(sid: int, tool: str, name: str, params: dict[str, Any], rows: list[Planned], cause: str | None,
             rules_hash: str, now: datetime) -> PlannedAction:
    occurrence = ",".join(f"{p.target}#{p.generation}" for p in rows)
    key = str(uuid.uuid5(_KEY_NAMESPACE, f"{sid}\x1f{occurrence}"))
    return PlannedAction(key=key, rule_id=RULE_ID, rules_hash=rules_hash, event_id=cause or "",
                         subject=f"subscriber:{sid}", occurrence=occurrence[:255], step="now", connector=tool,
                         name=name, params=params, due_at=now)


# -- reconcile ------------------------------------------------------------------------------------

def membership_targets(config: SegmentConfig) -> dict[str, str]:
    """Every list/tag target of the segments' sync (target -> segment id)."""
    out: dict[str, str] = {}
    for seg in config.segments:
        for tool, spec in (seg.sync or {}).items():
            for kind in ("list", "tag"):
                target = connectors.sync_target(tool, kind)
                if spec.get(kind) is not None and target is not None and target.add:
                    out.setdefault(f"{tool}:{kind}:{spec[kind]}", seg.id)
    return out


def read_tools(hub: "Hub", targets: dict[str, str]) -> tuple[dict[str, set[str]], list[dict[str, Any]]]:
    """What each live tool holds per membership target (case-folded e-mails), and per target the
    method reconcile uses: ``tool`` when it was read, else ``record`` with the reason."""
    from hub.kernel.errors import ActionError

    held: dict[str, set[str]] = {}
    methods: list[dict[str, Any]] = []
    clients: dict[str, Any] = {}
    for target, segment in targets.items():
        tool = target.split(":", 1)[0]
        connector = connectors.REGISTRY.get(tool)
        info: dict[str, Any] = {"target": target, "segment": segment, "method": "record"}
        methods.append(info)
        if connector is None or connector.dry_run(hub.settings):
            info["reason"] = "dry run"
            continue
        try:
            if tool not in clients:
                clients[tool] = connector.client(hub.settings)
            members = connector.members(clients[tool], target)
        except ActionError as exc:  # the message names the URL and status, never a credential
            info["reason"] = f"read failed: {exc}"
            continue
        if members is None:
            info["reason"] = "not readable"
            continue
        held[target] = members
        info.update(method="tool", in_tool=len(members), missing=0, extra=0, unknown=0)
    return held, methods


def reconcile(hub: "Hub", *, repair: bool = False,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Compare what the tools hold with what the hub holds; optionally repair.

    List and tag targets of live tools are read from the tool (``method: tool``): a segment member
    the tool lacks is ``missing``; someone the tool holds who is a subscriber the hub knows (by any
    e-mail seen) but not in the segment is ``extra``. E-mails the hub does not know are only counted
    (``unknown``), never removed. A difference whose fix is still on its way is ``pending``.

    Other targets (tools in dry run, property and field targets, reads that failed) are compared
    with the hub's record of confirmed syncs (``method: record``): a desired value never planned or
    different from the last planned one is ``unsynced``; a last action that failed, died or was
    cancelled is ``failed``; actions still on their way are ``pending``.

    ``repair`` plans, per drifted subscriber, the same actions the sync plans (same key scheme), so
    every member's outcome is recorded. ``progress(done, total)`` is told every 100 subscribers compared.
    """
    from hub.kpis import Rates
    from hub.segments import config as config_mod
    from hub.segments.bulk import collector_paused
    from hub.segments.engine import diff, evaluate, load_rows
    from hub.store import utcnow
    from hub.store.subscriber_models import ProfileStats

    now = utcnow()
    config = config_mod.current(hub.settings["HUB_RULES_PATH"])
    rates = Rates.from_settings(hub.settings)
    in_tool, methods = read_tools(hub, membership_targets(config))
    by_target = {m["target"]: m for m in methods}
    report: dict[str, Any] = {"checked": 0, "in_sync": 0, "pending": 0, "drift": [], "repaired": 0,
                              "targets": methods}
    due: list[int] = []
    with collector_paused(), hub.store.session() as session:
        rows = load_rows(session)
        statuses = dict(session.execute(select(Action.key, Action.status).where(Action.rule_id == RULE_ID)).all())
        held: dict[int, dict[str, SyncState]] = {}
        for s in session.execute(select(SyncState)).scalars():
            held.setdefault(s.subscriber_id, {})[s.target] = s
        emails: dict[int, set[str]] = {sid: {row.email.lower()} if row.email else set() for sid, row in rows.items()}
        if in_tool:
            for sid, seen in session.execute(select(ProfileStats.subscriber_id, ProfileStats.emails)).all():
                if sid in emails:
                    emails[sid].update(e.lower() for e in seen or [] if e)
            known = set().union(*emails.values()) if emails else set()
            for target, members in in_tool.items():
                by_target[target]["unknown"] = len(members - known)
        for done, (sid, row) in enumerate(rows.items(), 1):
            if progress and (done % 100 == 0 or done == len(rows)):
                progress(done, len(rows))
            change = diff(row, evaluate(config, rates, row, now))
            mine = held.get(sid, {})
            force = []
            for target, value in desired(config, change).items():
                state = mine.get(target)
                status = statuses.get(state.action_key) if state else None
                if target in in_tool:
                    there = bool(emails[sid] & in_tool[target])
                    if not value and not there:
                        continue
                    report["checked"] += 1
                    if bool(value) == there:
                        report["in_sync"] += 1
                        continue
                    if state is not None and state.value == value and status in ActionStatus.PENDING:
                        report["pending"] += 1  # the fix is on its way
                        continue
                    kind = "missing" if value else "extra"
                    by_target[target][kind] += 1
                    method = "tool"
                else:
                    if state is None and not value:
                        continue
                    report["checked"] += 1
                    if state is None or state.value != value:
                        kind = "unsynced"
                    elif status in (ActionStatus.FAILED, ActionStatus.DEAD, ActionStatus.CANCELLED) or status is None:
                        kind = "failed"
                    elif status in ActionStatus.PENDING:
                        report["pending"] += 1
                        continue
                    else:
                        report["in_sync"] += 1
                        continue
                    method = "record"
                report["drift"].append({"subscriber_id": sid, "email": row.email, "target": target, "kind": kind,
                                        "method": method, "want": value, "last_sent": state.value if state else None,
                                        "action_status": status})
                force.append(target)
            if repair and force:
                due.extend(plan(hub, session, config, [change], None, now, force=force))
        report["repaired"] = len(due)
    outbox.dispatch(hub, due)
    return report
