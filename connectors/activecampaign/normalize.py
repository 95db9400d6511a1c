"""ActiveCampaign webhooks -> canonical events, driven by mappings/activecampaign.yaml.

The body is ``application/x-www-form-urlencoded`` with PHP-style bracketed keys, because
ActiveCampaign tells receivers to read PHP's ``$_POST`` (providers.md §6.1). Code here parses those
keys into nested structures, reads ``date_time`` leniently and derives the event id, since
ActiveCampaign sends none.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from connectors.base import RawDelivery
from connectors.payload import MAX_DEPTH
from hub.kernel.errors import PayloadError
from hub.kernel.events import CanonicalEvent, EventType
from hub.kernel.mapping import MappingTable, Source
from hub.kernel.values import rfc3339

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(body: bytes) -> dict[str, Any]:
    """``contact[fields][plan]=pro&list[][id]=3`` ->
    ``{"contact": {"fields": {"plan": "pro"}}, "list": [{"id": "3"}]}``.

    As in PHP, a later key replaces an earlier one of another shape (``list=3`` then ``list[][id]=3``).
    ``[]`` appends, except that ``list[][id]=1&list[][name]=a`` fills one element until a key repeats.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"form body is not UTF-8: {exc}") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text.strip()))
    except ValueError as exc:
        raise PayloadError(f"not a form-encoded body: {exc}") from exc
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:  # an unbalanced bracket: keep the key as it came
            out[key] = value
            continue
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if len(parts) > MAX_DEPTH:  # PHP stops at 64 too (max_input_nesting_level)
            raise PayloadError(f"form key nested more than {MAX_DEPTH} levels deep: {key[:40]}...")
        _assign(out, parts, value)
    return _listify(out)


def _listify(node: Any) -> Any:
    """``updated_fields[0]=a&updated_fields[1]=b`` -> a list, as PHP's numeric keys read in order."""
    if isinstance(node, list):
        return [_listify(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _assign(node: dict[str, Any], parts: list[str], value: str) -> None:
    key, rest = parts[0], parts[1:]
    if not rest:
        node[key] = value
        return
    wants_list = rest[0] == ""
    child = node.get(key)
    if not isinstance(child, list if wants_list else dict):
        child = node[key] = [] if wants_list else {}
    if wants_list:
        _append(child, rest[1:], value)
    else:
        _assign(child, rest, value)


def _append(items: list[Any], rest: list[str], value: str) -> None:
    if not rest:
        items.append(value)
    elif rest[0] == "":
        items.append([])
        _append(items[-1], rest[1:], value)
    else:
        last = items[-1] if items else None
        if not isinstance(last, dict) or rest[0] in last:  # a repeated key starts the next element
            last = {}
            items.append(last)
        _assign(last, rest, value)


_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M", "%Y-%m-%d",
            "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y")


def parse_date_time(value: str | None) -> str | None:
    """RFC 3339 UTC from ``date_time`` in any of the shapes seen: ISO 8601 with an offset or ``Z``,
    ``YYYY-MM-DD HH:MM:SS`` (no zone: read as UTC), a trailing ``-0500`` or `` -05:00``, epoch seconds,
    US dates. None when nothing fits."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"\d{9,10}(\.\d+)?", text):
        return rfc3339(datetime.fromtimestamp(float(text), tz=timezone.utc))
    iso = re.sub(r"\s+([+-]\d{2}:?\d{2})$", r"\1", text)  # "2026-01-01 10:00:00 -05:00"
    iso = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", iso) if re.search(r"[T ]\d", iso) else iso
    try:
        parsed = datetime.fromisoformat(iso[:-1] + "+00:00" if iso.endswith(("Z", "z")) else iso)
    except ValueError:
        parsed = None
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            return None
    return rfc3339(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc))


def event_key(form: dict[str, Any], fallback_time: str | None = None) -> str | None:
    """A stable id for one webhook: type, contact id, list and ``date_time`` (plus the tag, campaign
    and link when present, so two clicks in the same second on different links stay apart).
    None when the form has no ``date_time`` and no ``fallback_time`` is given."""
    contact = form.get("contact") if isinstance(form.get("contact"), dict) else {}
    lists = form.get("list")
    list_ids = ",".join(str(i.get("id", "")) if isinstance(i, dict) else str(i) for i in lists) \
        if isinstance(lists, list) else str(lists or "")
    when = parse_date_time(form.get("date_time") if isinstance(form.get("date_time"), str) else None) \
        or str(form.get("date_time") or "") or fallback_time
    if not when:
        return None
    extras = [str(form.get(k) or "") for k in ("tag", "campaign", "link", "message")]
    who = contact.get("id") or contact.get("email") or ""
    key = f"{form.get('type') or 'unknown'}:{who}:{list_ids}:{when}"
    if any(extras):
        key += ":" + hashlib.sha256("\x1f".join(extras).encode()).hexdigest()[:16]
    return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def normalize(delivery: RawDelivery, table: MappingTable) -> list[CanonicalEvent]:
    form = parse_form(delivery.body)
    if not form.get("type"):
        raise PayloadError("ActiveCampaign webhook without a type field")
    # date_time is read leniently; when absent or unreadable, the time we received it stands in
    time = parse_date_time(form.get("date_time") if isinstance(form.get("date_time"), str) else None)
    received = rfc3339(delivery.received_at)
    derived = {"event_id": event_key(form, fallback_time=received), "time": time or received}
    events = table.normalize(Source({**form, "_derived": derived}, delivery.headers),
                             fallback_id=str(derived["event_id"]))
    for event in events:
        if event.type == EventType.PROVIDER_UNMAPPED:
            event.data = {"raw": form}
    return events
