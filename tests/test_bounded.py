"""Bounded reads and bounded JSON: limits counted on what is read, not on what is claimed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from apr_qa.bounded import (
    MAX_JSON_DEPTH,
    JsonOutOfBounds,
    UnreadableInput,
    json_depth,
    loads_bounded,
    read_regular,
)


def test_json_deeper_than_the_bound_is_refused_before_parsing() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(JsonOutOfBounds, match=f"nested {MAX_JSON_DEPTH + 1} levels"):
        loads_bounded(deep)
    at_bound = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_bounded(at_bound) == json.loads(at_bound)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"output": "[" * 1000 + '\\"{' * 50})
    assert json_depth(text) == 1
    assert loads_bounded(text) == json.loads(text)


def test_an_integer_too_long_for_int_is_out_of_bounds_not_a_crash() -> None:
    with pytest.raises(JsonOutOfBounds, match="5000 digits"):
        loads_bounded('{"b": 1' + "0" * 4999 + "}")
    assert loads_bounded('{"b": 12345678901234567890}') == {"b": 12345678901234567890}


def test_not_json_is_still_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_bounded("{nope")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/zero", "is a character device, not a file"),
        ("/", "is a directory, not a file"),
        ("/nonexistent/x", "file not found"),
    ],
)
def test_only_regular_files_are_read(target: str, reason: str) -> None:
    with pytest.raises(UnreadableInput) as info:
        read_regular(Path(target), 1024)
    assert info.value.reason == reason


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableInput, match="FIFO"):
        read_regular(fifo, 1024)  # opening it would block: no writer


def test_a_regular_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(UnreadableInput, match="larger than 1024 bytes, the limit for a lock file"):
        read_regular(path, 1024, "lock file")
    path.write_bytes(b"x" * 1024)
    assert len(read_regular(path, 1024)) == 1024
