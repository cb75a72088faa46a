"""Text oracles: ``contains``, ``not_contains``, ``regex``, ``exact``, ``starts_with``.

Shared options: ``value`` or ``values`` (strings), ``case_sensitive`` (default
true; false compares case-folded text), ``strip`` (default true: leading and
trailing whitespace of the output is ignored). A scenario's ``expected`` may give
the value of ``contains``, ``exact``, ``starts_with`` and the pattern of ``regex``
(see :func:`apr_qa.oracles.with_expected`); ``not_contains`` takes none, since
what must not appear is not what is expected.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, register
from apr_qa.oracles._options import as_bool, as_int, as_str, one_or_many
from apr_qa.oracles._regex import (
    Pattern,
    RegexTimeout,
    catastrophic_input,
    compile_pattern,
    regex_error,
    search,
)

__all__ = [
    "DEFAULT_REGEX_MAX_CHARS",
    "MAX_REGEX_MAX_CHARS",
    "Regex",
    "TextMatch",
    "contains",
    "exact",
    "not_contains",
    "regex",
    "starts_with",
]

# The options a scenario's ``expected`` stands for (singular first).
_ANSWER = ("value", "values")
# A regex reads at most this much output: polynomial backtracking stays bounded.
DEFAULT_REGEX_MAX_CHARS = 10_000
MAX_REGEX_MAX_CHARS = 1_000_000


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass(frozen=True)
class TextMatch:
    """A string comparison between the (normalised) output and a list of values."""

    name: str
    values: tuple[str, ...]
    test: Callable[[str, tuple[str, ...]], tuple[bool, str]]
    case_sensitive: bool
    strip: bool

    def _norm(self, text: str) -> str:
        text = text.strip() if self.strip else text
        return text if self.case_sensitive else text.casefold()

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when the comparison holds."""
        values = tuple(v if self.case_sensitive else v.casefold() for v in self.values)
        passed, seen = self.test(self._norm(output), values)
        reason = f"{self.name}: {seen}"
        facts = {"rule": self.name, "values": list(self.values)}
        return Verdict.ok(reason, **facts) if passed else Verdict.fail(reason, **facts)


def _values(name: str, value: object, values: object) -> tuple[str, ...]:
    found = one_or_many(name, ("value", value), ("values", values))
    if found is None:
        if name == "not_contains":
            needs = "'value' or 'values' (what must not appear; a scenario's 'expected' is not)"
        else:
            needs = "'value', 'values' or the scenario's 'expected'"
        raise UsageError(f"oracle {name!r}: needs {needs}")
    return tuple(found)


def _build(
    name: str,
    test: Callable[[str, tuple[str, ...]], tuple[bool, str]],
    value: object,
    values: object,
    case_sensitive: object,
    strip: object,
) -> TextMatch:
    return TextMatch(
        name=name,
        values=_values(name, value, values),
        test=test,
        case_sensitive=as_bool(name, "case_sensitive", case_sensitive),
        strip=as_bool(name, "strip", strip),
    )


@register("contains", answer=_ANSWER)
def contains(
    *,
    value: object = None,
    values: object = None,
    mode: object = "all",
    case_sensitive: object = True,
    strip: object = True,
) -> TextMatch:
    """Pass when the output contains every value (``mode: any``: at least one)."""
    how = as_str("contains", "mode", mode)
    if how not in ("all", "any"):
        raise UsageError(f"oracle 'contains': option 'mode' must be 'all' or 'any', got {mode!r}")

    def test(text: str, wanted: tuple[str, ...]) -> tuple[bool, str]:
        missing = [v for v in wanted if v not in text]
        ok = not missing if how == "all" else len(missing) < len(wanted)
        if ok:
            return True, f"output contains {how} of {', '.join(map(_shown, wanted))}"
        return False, f"output lacks {', '.join(map(_shown, missing))} in {_shown(text)}"

    return _build("contains", test, value, values, case_sensitive, strip)


@register("not_contains")
def not_contains(
    *,
    value: object = None,
    values: object = None,
    case_sensitive: object = True,
    strip: object = True,
) -> TextMatch:
    """Pass when the output contains none of the values."""

    def test(text: str, banned: tuple[str, ...]) -> tuple[bool, str]:
        present = [v for v in banned if v in text]
        if present:
            return False, f"output contains {', '.join(map(_shown, present))}"
        return True, f"output contains none of {', '.join(map(_shown, banned))}"

    return _build("not_contains", test, value, values, case_sensitive, strip)


@register("exact", answer=_ANSWER)
def exact(
    *,
    value: object = None,
    values: object = None,
    case_sensitive: object = True,
    strip: object = True,
) -> TextMatch:
    """Pass when the output equals one of the values."""

    def test(text: str, allowed: tuple[str, ...]) -> tuple[bool, str]:
        if text in allowed:
            return True, f"output equals {_shown(text)}"
        return False, f"output {_shown(text)} equals none of {', '.join(map(_shown, allowed))}"

    return _build("exact", test, value, values, case_sensitive, strip)


@register("starts_with", answer=_ANSWER)
def starts_with(
    *,
    value: object = None,
    values: object = None,
    case_sensitive: object = True,
    strip: object = True,
) -> TextMatch:
    """Pass when the output starts with one of the values."""

    def test(text: str, prefixes: tuple[str, ...]) -> tuple[bool, str]:
        for prefix in prefixes:
            if text.startswith(prefix):
                return True, f"output starts with {_shown(prefix)}"
        return (
            False,
            f"output {_shown(text)} starts with none of {', '.join(map(_shown, prefixes))}",
        )

    return _build("starts_with", test, value, values, case_sensitive, strip)


def _nested_unbounded(items: Any, inside: bool = False) -> bool:
    """Whether a parsed pattern repeats, without bound, something that itself does.

    ``(a+)+`` and ``(a*b?)*`` backtrack exponentially on a near-miss; refusing them
    when the playbook is validated beats a scenario that never returns.
    """
    parser = importlib.import_module("re._parser")
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            unbounded = arg[1] == parser.MAXREPEAT
            if unbounded and inside:
                return True
            if _nested_unbounded(arg[2], inside or unbounded):
                return True
        elif name == "SUBPATTERN":
            if _nested_unbounded(arg[3], inside):
                return True
        elif name == "BRANCH" and any(_nested_unbounded(b, inside) for b in arg[1]):
            return True
    return False


def _wildcard_repeats(items: Any) -> int:
    """How many unbounded repeats of a wildcard (``.``, ``[^x]``) the pattern holds.

    Each one can rescan the rest of the text from every start position; two in a
    row (``.*a.*b``) already make a search cubic in the output's length.
    """
    parser = importlib.import_module("re._parser")
    count = 0
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            body = list(arg[2])
            wide = len(body) == 1 and (
                str(body[0][0]) in ("ANY", "NOT_LITERAL")
                or (str(body[0][0]) == "IN" and str(body[0][1][0][0]) == "NEGATE")
            )
            count += int(wide and arg[1] == parser.MAXREPEAT) + _wildcard_repeats(arg[2])
        elif name == "SUBPATTERN":
            count += _wildcard_repeats(arg[3])
        elif name == "BRANCH":
            count += sum(_wildcard_repeats(b) for b in arg[1])
    return count


@dataclass(frozen=True)
class Regex:
    """Searches (or fully matches) a compiled pattern in the first ``max_chars`` of output.

    Each search runs under ``timeout_s`` (default ``MATCH_TIMEOUT_S``; the ``regex``
    package's own timeout); a search that runs out is a ``timeout`` verdict, never a pass.
    """

    pattern: Pattern
    fullmatch: bool
    strip: bool
    max_chars: int
    timeout_s: float | None = None

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when the pattern matches."""
        text = output.strip() if self.strip else output
        cut = len(text) > self.max_chars
        text = text[: self.max_chars]
        how = "fully matches" if self.fullmatch else "matches"
        note = f" (first {self.max_chars} chars read)" if cut else ""
        facts: dict[str, object] = {
            "rule": "regex",
            "pattern": self.pattern.pattern,
            "truncated": cut,
        }
        try:
            match = search(self.pattern, text, fullmatch=self.fullmatch, timeout=self.timeout_s)
        except RegexTimeout as exc:
            return Verdict.timeout(
                f"regex: {_shown(self.pattern.pattern)} did not finish on {len(text)} chars "
                f"within {exc.seconds:g} s (catastrophic backtracking){note}",
                **facts,
                timeout_s=exc.seconds,
            )
        if match is None:
            return Verdict.fail(
                f"regex: {_shown(self.pattern.pattern)} never {how} {_shown(text)}{note}", **facts
            )
        facts["match"] = match.group()[:200]
        return Verdict.ok(
            f"regex: {_shown(self.pattern.pattern)} {how} {_shown(match.group())}{note}", **facts
        )


def _static_problem(source: str, ignore_case: bool) -> str | None:
    """What the pattern's shape alone says is wrong, read with ``re``'s parser.

    A pattern only ``regex`` reads (``\\p{L}``) has no static check; the probes still apply.
    """
    try:
        parsed = importlib.import_module("re._parser").parse(
            source, re.IGNORECASE if ignore_case else 0
        )
    except (re.error, RecursionError, OverflowError):
        return None
    if _nested_unbounded(parsed):
        return "nests unbounded repetition (like (a+)+), which can backtrack for ever; rewrite it"
    if _wildcard_repeats(parsed) > 1:
        return (
            "repeats wildcards (like .*a.*b) more than once, which takes cubic time on long "
            "output; bound them ({0,200}) or split the check with all_of"
        )
    return None


@register("regex", answer=("pattern", "value"))
def regex(
    *,
    pattern: object = None,
    value: object = None,
    case_sensitive: object = True,
    fullmatch: object = False,
    strip: object = True,
    max_chars: object = DEFAULT_REGEX_MAX_CHARS,
) -> Regex:
    """Pass when ``pattern`` (alias ``value``) is found in the output (``fullmatch``: is it).

    Refused when the pattern does not compile, has a shape known to backtrack
    badly, or stalls on a short adversarial input (see ``_regex``).
    """
    found = one_or_many("regex", ("pattern", pattern), ("value", value))
    if found is None:
        raise UsageError("oracle 'regex': needs 'pattern' or the scenario's 'expected'")
    source = found[0]
    ignore_case = not as_bool("regex", "case_sensitive", case_sensitive)
    try:
        compiled = compile_pattern(source, ignore_case=ignore_case)
    except (regex_error, RecursionError, OverflowError, ValueError) as exc:
        raise UsageError(f"oracle 'regex': pattern {source!r} does not compile: {exc}") from None
    problem = _static_problem(source, ignore_case)
    if problem is not None:
        raise UsageError(f"oracle 'regex': pattern {source!r} {problem}")
    stalled = catastrophic_input(compiled)
    if stalled is not None:
        raise UsageError(
            f"oracle 'regex': pattern {source!r} shows catastrophic backtracking: searching "
            f"{_shown(stalled)} ({len(stalled)} chars) did not finish; rewrite it without "
            "alternatives or repeats that can match the same text"
        )
    return Regex(
        pattern=compiled,
        fullmatch=as_bool("regex", "fullmatch", fullmatch),
        strip=as_bool("regex", "strip", strip),
        max_chars=as_int("regex", "max_chars", max_chars, minimum=1, maximum=MAX_REGEX_MAX_CHARS),
    )
