"""Small pieces both real backends share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from apr_qa.backends import ContextOverflow
from apr_qa.errors import UsageError

__all__ = ["checked_ids", "one_line"]


def checked_ids(
    token_ids: Sequence[int], vocab_size: int, context: int, path: Path | None
) -> list[int]:
    """``token_ids`` as ints, each in the vocabulary, no more than the context holds."""
    ids = [int(t) for t in token_ids]
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise UsageError(
            f"{path}: token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1})"
        )
    if len(ids) > context:
        raise ContextOverflow(path, len(ids), context, "the sequence to score")
    return ids


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line load errors."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
