"""Read a playbook file into plain data, keeping the file:line:col of every value.

The reader is defensive: it refuses special files (devices, FIFOs, directories),
files over the size limit (counting bytes read, not the size the file claims),
empty and binary files, YAML alias bombs and duplicate keys with one located
problem each, and never lets a YAML library exception escape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apr_qa.bounded import UnreadableInput, read_regular
from apr_qa.errors import PlaybookError, Problem

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "Located", "Path_", "Source", "read_source"]

MAX_FILE_BYTES = 2 * 1024 * 1024
# Expanded size limit: a billion-laughs document references few nodes but expands to many.
MAX_NODES = 200_000
# Nesting limit: real playbooks nest under 10 levels; the loader and validator recurse per level.
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]

try:  # The C composer keeps marks too and is several times faster.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Located:
    """Where a value (or a mapping key) starts in its file, 1-based."""

    line: int
    col: int


@dataclass(frozen=True)
class Source:
    """A playbook file read into plain data, with positions."""

    path: Path
    text: str
    sha256: str
    data: Any
    values: dict[Path_, Located]
    keys: dict[Path_, Located]

    def where(self, path: Path_, *, key: bool = False) -> Located:
        """The closest known position for a data path (the key's, when asked)."""
        table = self.keys if key else self.values
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Located(1, 1))

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        """A problem located at a data path."""
        at = self.where(path, key=key)
        return Problem(str(self.path), at.line, at.col, message)


def _fail(path: Path, message: str, line: int = 1, col: int = 1) -> PlaybookError:
    return PlaybookError([Problem(str(path), line, col, message)])


def _decode(path: Path, raw: bytes) -> str:
    if not raw.strip():
        raise _fail(path, "empty file: a playbook needs at least a 'model'")
    if b"\x00" in raw:
        raise _fail(path, "binary file (NUL bytes): not a YAML playbook")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(
            path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): not a YAML playbook", line
        ) from None


def _nesting(text: str, path: Path) -> None:
    """Refuse documents nested deeper than MAX_DEPTH before composing them.

    Composing recurses once per level: a few thousand brackets raise RecursionError
    in our builder, a hundred thousand crash the C composer. Parse events carry no
    recursion, and stopping at the first level too deep keeps the scan cheap.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                raise _fail(
                    path,
                    f"nested more than {MAX_DEPTH} levels deep; playbooks are limited to {MAX_DEPTH}",
                    line,
                    col,
                )
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def _expanded_size(root: yaml.Node, path: Path) -> None:
    """Refuse alias bombs and recursive aliases before anything is constructed."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            mark = node.start_mark
            raise _fail(path, "recursive YAML alias", mark.line + 1, mark.column + 1)
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            mark = node.start_mark
            raise _fail(
                path,
                f"document expands to more than {MAX_NODES} values (YAML alias bomb?)",
                mark.line + 1,
                mark.column + 1,
            )
        return total

    size(root)


class _Builder:
    """Turns a composed node graph into plain data plus a position table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[Path_, Located] = {}
        self.keys: dict[Path_, Located] = {}
        self.problems: list[Problem] = []
        self._scalars = _Loader("")

    def _at(self, node: yaml.Node) -> Located:
        return Located(node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, at: Path_) -> Any:
        self.values[at] = self._at(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, at)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*at, i)) for i, child in enumerate(node.value)]
        if not isinstance(node, yaml.ScalarNode):  # pragma: no cover - the three node kinds
            return None
        try:
            value = self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            where = self._at(node)
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.append(
                Problem(
                    str(self.path),
                    where.line,
                    where.col,
                    f"cannot read value {node.value[:40]!r}: {reason}",
                )
            )
            return None
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()  # keep dates as the text the author wrote
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return value

    def _mapping(self, node: yaml.MappingNode, at: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            loc = self._at(key_node)
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                self.problems.append(
                    Problem(str(self.path), loc.line, loc.col, "mapping keys must be plain strings")
                )
                continue
            key = str(key_node.value)
            if key in out:
                first = self.keys[(*at, key)]
                self.problems.append(
                    Problem(
                        str(self.path),
                        loc.line,
                        loc.col,
                        f"duplicate key '{key}' (first at line {first.line})",
                    )
                )
                continue
            self.keys[(*at, key)] = loc
            out[key] = self.build(value_node, (*at, key))
        return out


def read_source(path: Path) -> Source:
    """Read and parse one playbook file; raise PlaybookError with located problems."""
    import hashlib

    try:
        raw = read_regular(path, MAX_FILE_BYTES, "playbook file")
    except UnreadableInput as exc:
        raise _fail(path, exc.reason) from None
    text = _decode(path, raw)
    try:
        _nesting(text, path)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise _fail(path, f"invalid YAML: {what}", line, col) from None
    except yaml.YAMLError as exc:
        raise _fail(path, f"invalid YAML: {exc}") from None
    documents = [n for n in nodes if n is not None]
    if not documents:
        raise _fail(path, "empty file: a playbook needs at least a 'model'")
    if len(documents) > 1:
        second = documents[1].start_mark
        raise _fail(path, "several YAML documents; a playbook is one", second.line + 1, 1)
    root = documents[0]
    _expanded_size(root, path)
    builder = _Builder(path)
    data = builder.build(root, ())
    if builder.problems:
        raise PlaybookError(builder.problems)
    if not isinstance(data, dict):
        at = builder.values[()]
        raise _fail(
            path, f"a playbook is a mapping of keys, found {type(data).__name__}", at.line, at.col
        )
    return Source(path, text, hashlib.sha256(raw).hexdigest(), data, builder.values, builder.keys)
