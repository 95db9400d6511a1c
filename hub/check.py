"""``hub rules check``: every file the hub loads from the rules paths, validated together: the rules
and vars, the segments, tiers and loyalty keys, and the segment names rules compare against."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, Iterator

from jinja2 import nodes

from hub.rules.expressions import Expressions, TemplateSyntaxError
from hub.rules.loader import load_rules
from hub.rules.yamlpos import LocatedError


def check(paths: Iterable[str | Path]) -> tuple[str, list[str]]:
    """(a one-line summary, every error as ``file:line:col: message``)."""
    from hub.segments.config import load_config

    paths = list(paths)
    errors: list[str] = []
    ruleset = config = None
    try:
        ruleset = load_rules(paths)
    except LocatedError as exc:
        errors.extend(exc.errors)
    try:
        config = load_config(paths)
    except LocatedError as exc:
        errors.extend(e for e in exc.errors if e not in errors)  # a YAML error is reported by both
    if ruleset is not None and config is not None:
        segments = {s.id for s in config.segments}
        exprs = Expressions()
        for rule in ruleset.rules:
            sources = [rule.when_source] + [c.when_source for c in rule.cancel_on]
            for source in filter(None, sources):
                for name in segment_names(exprs, source):
                    if name not in segments:
                        close = difflib.get_close_matches(name, sorted(segments), n=1, cutoff=0.6)
                        errors.append(f"{rule.source}: rule {rule.id}: unknown segment {name!r}"
                                      + (f" (did you mean {close[0]!r}?)" if close else "")
                                      + f" (segments: {', '.join(sorted(segments)) or 'none'})")
    if errors or ruleset is None or config is None:
        return "", errors
    enabled = sum(1 for r in ruleset.rules if r.enabled)
    return (f"ok: {len(ruleset.rules)} rules ({enabled} enabled), {len(config.segments)} segments, "
            f"{len(config.tiers)} tiers in {len(ruleset.files)} files, version {ruleset.hash}"), []


def segment_names(exprs: Expressions, source: str) -> Iterator[str]:
    """Segment ids a condition compares against: ``'loyal' in subscriber.segments``,
    ``segment.id == 'loyal'``."""
    try:
        tree = exprs.env.parse("{{ (" + source + ") }}")
    except TemplateSyntaxError:
        return
    for compare in tree.find_all(nodes.Compare):
        operands = [compare.expr] + [op.expr for op in compare.ops]
        paths = {_path(o) for o in operands}
        if not paths & {"subscriber.segments", "segment.id"}:
            continue
        for operand in operands:
            if isinstance(operand, nodes.Const) and isinstance(operand.value, str):
                yield operand.value
            elif isinstance(operand, (nodes.List, nodes.Tuple)):
                yield from (i.value for i in operand.items if isinstance(i, nodes.Const) and isinstance(i.value, str))


def _path(node: nodes.Node) -> str | None:
    parts = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    return ".".join([node.name] + parts[::-1]) if isinstance(node, nodes.Name) else None
