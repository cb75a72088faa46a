"""Time-bounded regular expressions for oracles, on the ``regex`` package.

Python's ``re`` cannot be interrupted: a pattern like ``(.|.|.)*z$`` backtracks
for ever on a short near-miss, and an oracle judging in the parent process would
hang the run past every timeout. The ``regex`` package (a transformers
dependency, pure C, ``re``-compatible syntax in its default V0 mode) takes a
``timeout=`` on every match and raises ``TimeoutError`` when it runs out, so a
judgment past its bound is a ``timeout`` verdict, not a hang. RE2 would refuse
backreferences and lookarounds that playbooks use; a timeout keeps the syntax.

Patterns are also tried when a playbook is validated: :func:`catastrophic_input`
runs each on a few adversarial strings built from its own alphabet (long runs of
one character, with and without the pattern's literals around them, ending in a
character that should not match) under a small timeout. A pattern that cannot
answer on 32 characters is refused with the string that stalled it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import regex

__all__ = [
    "MATCH_TIMEOUT_S",
    "Pattern",
    "RegexTimeout",
    "catastrophic_input",
    "compile_pattern",
    "regex_error",
    "search",
]

# One match or search at judge time; generous for linear patterns on max_chars of output.
MATCH_TIMEOUT_S = 1.0
# Validate-time probes: a well-behaved pattern answers on 32 characters in microseconds.
PROBE_LENGTH = 32
# (``regex`` checks its clock now and then: a timeout overshoots by about 3x.)
PROBE_TIMEOUT_S = 0.02
# A probe that ran out is retried once with more time, so a busy machine is not a verdict.
PROBE_RETRY_S = 0.25
_MAX_ALPHABET = 12
_GENERIC = "a0 _-.\n"
_META = set("\\()[]{}|*+?^$.,:<>=!#&~")

Pattern = Any
"""A compiled ``regex`` pattern (the package ships no type information)."""
regex_error: type[Exception] = regex.error
"""What ``compile_pattern`` raises for a pattern that does not compile."""


class RegexTimeout(Exception):
    """A match ran past its time bound."""

    def __init__(self, pattern: str, seconds: float, length: int) -> None:
        self.pattern = pattern
        self.seconds = seconds
        self.length = length
        super().__init__(
            f"pattern {pattern!r} ran past {seconds:g} s on {length} characters "
            "(catastrophic backtracking?)"
        )


def compile_pattern(source: str, *, ignore_case: bool = False) -> Pattern:
    """Compile ``source`` with the ``regex`` package; raises ``regex.error`` when invalid."""
    return regex.compile(source, regex.IGNORECASE if ignore_case else 0)


def search(
    pattern: Pattern, text: str, *, fullmatch: bool = False, timeout: float | None = None
) -> Any:
    """``pattern.search`` (or ``fullmatch``) under ``timeout`` seconds (default
    MATCH_TIMEOUT_S, read at each call); raises RegexTimeout when it runs out."""
    timeout = MATCH_TIMEOUT_S if timeout is None else timeout
    try:
        if fullmatch:
            return pattern.fullmatch(text, timeout=timeout)
        return pattern.search(text, timeout=timeout)
    except TimeoutError:
        raise RegexTimeout(pattern.pattern, timeout, len(text)) from None


def _alphabet(source: str) -> list[str]:
    """Characters the pattern names literally, then a few generic ones."""
    chars: list[str] = []
    escaped = False
    for char in source:
        if escaped:
            escaped = False
            if char.isalnum():  # \d, \w, \s ...: a class, stand in with the generic characters
                continue
        elif char == "\\":
            escaped = True
            continue
        elif char in _META:
            continue
        if char not in chars:
            chars.append(char)
    for char in _GENERIC:
        if char not in chars:
            chars.append(char)
    return chars[:_MAX_ALPHABET] if len(chars) > _MAX_ALPHABET else chars


def _words(source: str) -> list[str]:
    """Runs of two or more literal characters (``END`` in ``(.|\\s)*END$``)."""
    words = regex.split(r"\\.|[\\()\[\]{}|*+?^$.]", source)
    return list(dict.fromkeys(w for w in words if len(w) > 1))[:_MAX_ALPHABET]


def _probes(source: str) -> Iterator[str]:
    alphabet = _alphabet(source)
    literals = [c for c in alphabet if c not in _GENERIC] + _words(source) or ["!"]
    for fill in alphabet:
        run = fill * PROBE_LENGTH
        yield run
        yield run + "!"
        yield run + "\x00"
        for literal in literals:
            if literal != fill:
                yield literal + run
                yield run + literal
                yield run + literal + run[: PROBE_LENGTH // 2]


def catastrophic_input(pattern: Pattern) -> str | None:
    """A short input on which ``pattern`` cannot finish searching in time, or None."""
    for probe in _probes(pattern.pattern):
        for timeout in (PROBE_TIMEOUT_S, PROBE_RETRY_S):
            try:
                pattern.search(probe, timeout=timeout)
                break
            except TimeoutError:
                continue
        else:
            return probe
    return None
