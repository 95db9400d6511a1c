"""YAML with positions: load a document and remember where every value came from, so errors
can say ``file:line:col: what is wrong``."""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[Any, ...]


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
    marks: dict[Path, tuple[int, int]] = {}
    data = _convert(node, (), marks) if node is not None else None
    return Located(filename, data, marks)


def _convert(node: yaml.Node, path: Path, marks: dict[Path, tuple[int, int]]) -> Any:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # keys are taken as written: YAML 1.1 would read the key `on:` as the boolean True
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in out:
                raise LocatedError([f"{marks_str(key_node)}: duplicate key {key!r}"])
            out[key] = _convert(value_node, path + (key,), marks)
            marks.setdefault(path + (key,), (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(child, path + (i,), marks) for i, child in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def marks_str(node: yaml.Node) -> str:
    return f"{node.start_mark.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


class LocatedError(Exception):
    """Every problem found in a rules file, each as ``file:line:col: message``."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))
