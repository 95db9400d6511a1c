"""YAML with positions: load a document and remember where every value came from, so errors
can say ``file:line:col: what is wrong``.

Aliases are bounded: expanding them may add at most ``ALIAS_BUDGET`` values to a document (a
"billion laughs" file of a few hundred bytes otherwise expands to billions), and an alias inside
its own anchor (``&a [*a]``) is refused instead of recursing forever."""

from __future__ import annotations

from typing import Any, Callable

import yaml

Path = tuple[Any, ...]

#: values a document may gain by expanding aliases (a rules file uses a handful)
ALIAS_BUDGET = 10_000
#: nesting deeper than this is refused before PyYAML's recursive composer runs out of stack
MAX_DEPTH = 100


class Located:
    """A loaded document plus the (line, column) of each path in it (1-based)."""

    def __init__(self, filename: str, data: Any, marks: dict[Path, tuple[int, int]]):
        self.filename = filename
        self.data = data
        self.marks = marks

    def where(self, path: Path) -> str:
        """``file:line:col`` of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark:
                return f"{self.filename}:{mark[0]}:{mark[1]}"
        return f"{self.filename}:1:1"


def load(text: str, filename: str) -> Located:
    """Parse YAML; a syntax error raises ``LocatedError`` with its position."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else f"{filename}:1:1"
        raise LocatedError([f"{where}: {exc.problem or exc}"]) from None
    except RecursionError:
        raise LocatedError([f"{filename}:1:1: nested too deeply to read"]) from None
    marks: dict[Path, tuple[int, int]] = {}
    data = _Converter(filename, marks).convert(node, ()) if node is not None else None
    return Located(filename, data, marks)


class _Converter:
    """Nodes to Python values, counting what aliases add and refusing cycles."""

    def __init__(self, filename: str, marks: dict[Path, tuple[int, int]]):
        self.filename = filename
        self.marks = marks
        self.seen: set[int] = set()  # nodes converted at least once: meeting one again is an alias
        self.open: set[int] = set()  # nodes being converted (an alias to one of them is a cycle)
        self.added = 0

    def where(self, node: yaml.Node) -> str:
        return f"{self.filename}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def convert(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self.open:
            raise LocatedError([f"{self.where(node)}: recursive alias: the anchor here contains an alias to itself"])
        if id(node) in self.seen:
            self.added += 1
            if self.added > ALIAS_BUDGET:
                raise LocatedError([f"{self.where(node)}: aliases expand to more than {ALIAS_BUDGET} values "
                                    "(an alias bomb?)"])
        if len(path) > MAX_DEPTH:
            raise LocatedError([f"{self.where(node)}: nested more than {MAX_DEPTH} levels deep"])
        self.seen.add(id(node))
        self.open.add(id(node))
        try:
            return _convert(node, path, self.marks, self.convert)
        finally:
            self.open.discard(id(node))


def _convert(node: yaml.Node, path: Path, marks: dict[Path, tuple[int, int]],
             child: Callable[[yaml.Node, Path], Any]) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # keys are taken as written: YAML 1.1 would read the key `on:` as the boolean True
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in out:
                raise LocatedError([f"{marks_str(key_node)}: duplicate key {key!r}"])
            out[key] = child(value_node, path + (key,))
            marks.setdefault(path + (key,), (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [child(item, path + (i,)) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def marks_str(node: yaml.Node) -> str:
    return f"{node.start_mark.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


class LocatedError(Exception):
    """Every problem found in a rules file, each as ``file:line:col: message``."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))
