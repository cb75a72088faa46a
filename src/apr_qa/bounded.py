"""Bounded input: file reads capped by the bytes actually read, JSON capped in depth.

A file's reported size is not a bound: ``/dev/zero`` says 0 bytes and never
ends, a FIFO blocks on open, ``/proc`` files report 0 and hold anything. So
:func:`read_regular` refuses every file that is not a regular file before it is
opened, then reads at most ``limit + 1`` bytes whatever ``stat`` said.

Python's ``json`` parser recurses once per ``[`` or ``{``: a line of ten
thousand brackets raises RecursionError, and a value a little shallower than
the interpreter's limit makes every recursive consumer after it (a schema
validator) overflow instead. :func:`loads_bounded` refuses a document nested
deeper than a small limit before parsing it.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from apr_qa.errors import UsageError

__all__ = [
    "MAX_JSON_DEPTH",
    "NestingTooDeep",
    "UnreadableInput",
    "json_depth",
    "loads_bounded",
    "read_regular",
]

# Deeper than any record or config apr-qa writes or reads (evidence records nest about 4).
MAX_JSON_DEPTH = 64


class UnreadableInput(UsageError):
    """An input file that is not a regular file, is too large, or cannot be read.

    ``reason`` is the message without the path, for callers that locate it themselves.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NestingTooDeep(ValueError):
    """A JSON document nests arrays and objects deeper than allowed."""


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"


def read_regular(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them.

    Raises :class:`UnreadableInput` (a usage error) for a missing file, anything
    that is not a regular file (directory, device, FIFO, socket), a file with
    more than ``limit`` bytes, and a read error. ``what`` names the file's role
    in the messages ("playbook", "lock file").
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UnreadableInput(path, f"{what} not found") from None
    except OSError as exc:
        raise UnreadableInput(path, f"cannot read {what}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UnreadableInput(path, f"is {_kind(mode)}, not a {what}")
    try:
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise UnreadableInput(path, f"cannot read {what}: {exc.strerror}") from None
    if len(raw) > limit:
        raise UnreadableInput(path, f"is larger than {_size(limit)}, the limit for a {what}")
    return raw


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets in strings ignored).

    Linear in the text; meant for text already suspected (it scans in Python).
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """``json.loads`` that refuses documents nested deeper than ``max_depth``.

    Raises :class:`NestingTooDeep` (a ValueError) for deep documents and
    ``json.JSONDecodeError`` for text that is not JSON.
    """
    # Counting brackets runs in C; only text with enough of them needs the exact scan.
    if text.count("[") + text.count("{") > max_depth:
        depth = json_depth(text)
        if depth > max_depth:
            raise NestingTooDeep(f"JSON nested {depth} levels deep (limit {max_depth})")
    return json.loads(text)
