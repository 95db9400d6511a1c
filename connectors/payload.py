"""Bounded parsing of verified webhook bodies.

A signature proves who sent a body, not that it is sane: a provider bug or a leaked secret can
still deliver a body nested ten thousand levels deep. Every connector reads JSON through
``loads``, which turns anything unreadable, deeper than ``MAX_DEPTH`` or holding a non-finite number
(``NaN``, ``Infinity``, ``1e400``: Python reads them, PostgreSQL's jsonb and every provider refuse
them) into a PayloadError: the delivery is stored and flagged failed, never a 500 or a crashed job.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hub.kernel.errors import PayloadError

#: nesting deeper than any provider sends (Stripe's deepest objects are about 8 levels)
MAX_DEPTH = 64


def loads(body: bytes | str) -> Any:
    """The JSON document in ``body``; PayloadError when unreadable or nested past MAX_DEPTH."""
    try:
        doc = json.loads(body, parse_constant=_non_finite, parse_float=_finite_float)
    except RecursionError:  # json's C scanner gives up near the interpreter's recursion limit
        raise PayloadError(f"body is nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    if depth(doc) > MAX_DEPTH:
        raise PayloadError(f"body is nested more than {MAX_DEPTH} levels deep")
    return doc


def _non_finite(name: str) -> Any:
    raise PayloadError(f"body holds the non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"body holds a number too large for a float ({text[:20]})")
    return value


def depth(doc: Any) -> int:
    """Nesting depth of lists and dicts (a scalar is 0), without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:  # past the cap the answer is known: stop walking
            stack.extend((child, level + 1) for child in children)
    return deepest
