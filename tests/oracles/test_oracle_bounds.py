"""Every oracle judgment is bounded: past its bound it says ``timed_out`` or ``skipped``, never passed.

The hostile regexes here backtrack exponentially; each would hang ``re`` for
longer than the universe has existed. The bounded searches give up after a
fraction of a second (the timeout is lowered for speed; no test asserts a time).
"""

from __future__ import annotations

import importlib
import re

import pytest

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, create, validate_spec
from apr_qa.oracles import _regex as bounded_re
from apr_qa.oracles.code_syntax import MAX_CODE_CHARS
from apr_qa.oracles.json_schema import MAX_JSON_CHARS, JsonSchema, _bounded_validator
from apr_qa.oracles.text import Regex

# Exponential on a near-miss: every 'a' can be matched by three branches.
STALLING = "(.|.|.)*z"
NEAR_MISS = "z" + "a" * 40


@pytest.fixture
def quick_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded_re, "MATCH_TIMEOUT_S", 0.02)


def _stalling_regex() -> Regex:
    # Built directly: the factory refuses this pattern, which is the point of the next tests.
    return Regex(bounded_re.compile_pattern(STALLING), False, True, 10_000, timeout_s=0.02)


def test_a_judgment_past_its_bound_is_a_timeout_never_a_pass() -> None:
    verdict = _stalling_regex()(NEAR_MISS)
    assert verdict.timed_out and not verdict.passed and not verdict.skipped
    assert "catastrophic backtracking" in verdict.reason
    assert verdict.details["pattern"] == STALLING


def test_the_same_oracle_still_judges_output_it_can_finish() -> None:
    verdict = _stalling_regex()("z")
    assert verdict.passed and not verdict.timed_out


def test_timeout_verdicts_cannot_also_pass_or_skip() -> None:
    assert Verdict.timeout("ran out").timed_out
    with pytest.raises(ValueError, match="neither passed nor skipped"):
        Verdict(True, "x", timed_out=True)
    with pytest.raises(ValueError, match="neither passed nor skipped"):
        Verdict(False, "x", skipped=True, timed_out=True)


@pytest.mark.parametrize(
    "pattern",
    [
        "(.|.|.|.|.|.|.|.|.|.)*z",  # the shape: passed validation, hung a run 190 s
        "(.|.|.)*z$",
        "(a|aa)*$",
        "([a-z]|[a-c])*1$",
    ],
)
def test_validate_refuses_a_pattern_that_stalls_on_a_short_input(pattern: str) -> None:
    (problem,) = validate_spec("regex", {"pattern": pattern})
    assert "catastrophic backtracking" in problem
    assert repr(pattern) in problem


@pytest.mark.parametrize(
    "pattern",
    [
        r"\b4\b",
        "^(yes|no)$",
        r"\d+(\.\d+)?",
        r"[A-Z][a-z]+ [0-9]{1,3}",
        "(foo|bar)+baz",
        r"\p{Lu}\w+",
    ],
)
def test_validate_accepts_patterns_that_answer_quickly(pattern: str) -> None:
    assert validate_spec("regex", {"pattern": pattern}) == []


def test_combinators_pass_a_timeout_on_unless_another_child_decides(quick_timeout: None) -> None:
    stall = _stalling_regex()
    fine = create("contains", {"value": "z"})
    missing = create("contains", {"value": "nope"})
    from apr_qa.oracles.combinators import Combined

    both = Combined("all_of", (("regex", stall), ("contains", fine)))
    assert both(NEAR_MISS).timed_out
    failing = Combined("all_of", (("regex", stall), ("contains", missing)))
    verdict = failing(NEAR_MISS)
    assert not verdict.passed and not verdict.timed_out and "first failure" in verdict.reason
    either = Combined("any_of", (("regex", stall), ("contains", fine)))
    assert either(NEAR_MISS).passed
    neither = Combined("any_of", (("regex", stall), ("contains", missing)))
    assert neither(NEAR_MISS).timed_out


def test_json_schema_patterns_are_bounded_too(quick_timeout: None) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": STALLING}}}
    with pytest.raises(UsageError, match="catastrophic backtracking"):
        create("json_schema", {"schema": schema})
    oracle = JsonSchema(_bounded_validator()(schema))  # past the refusal, as a run would be
    verdict = oracle(f'{{"a": "{NEAR_MISS}"}}')
    assert verdict.timed_out and not verdict.passed
    assert oracle('{"a": "z"}').passed
    keyed = {"type": "object", "patternProperties": {"^k": {"type": "integer"}}}
    checker = create("json_schema", {"schema": keyed})
    assert checker('{"k1": 3}').passed
    assert not checker('{"k1": "three"}').passed


def test_json_schema_skips_output_over_its_size_bound() -> None:
    oracle = create("json_schema", {"schema": {"type": "array"}})
    assert oracle("[1, 2]").passed
    verdict = oracle("[" + "1," * MAX_JSON_CHARS + "1]")
    assert verdict.skipped and "not judged" in verdict.reason


def test_code_syntax_skips_output_over_its_size_bound() -> None:
    oracle = create("code_syntax", {"language": "python"})
    assert oracle("x = 1\n").passed
    verdict = oracle("x = 1\n" * MAX_CODE_CHARS)
    assert verdict.skipped and "not judged" in verdict.reason
    assert not oracle("def (:\n").passed


def test_regex_max_chars_is_bounded() -> None:
    (problem,) = validate_spec("regex", {"pattern": "a", "max_chars": "99999999999999999999"})
    assert "max_chars" in problem
    (problem,) = validate_spec("regex", {"pattern": "a", "max_chars": 10**9})
    assert "at most 1000000" in problem


def _builtin_patterns() -> list[tuple[str, str]]:
    found = []
    for name in ("arithmetic", "code_syntax", "garbage", "response", "_number_words", "_tokens"):
        module = importlib.import_module(f"apr_qa.oracles.{name}")
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found.append((f"{name}.{attr}", value.pattern))
            elif isinstance(value, tuple):
                found += [
                    (f"{name}.{attr}[{lang}]", rx.pattern)
                    for lang, rx in (v for v in value if isinstance(v, tuple) and len(v) == 2)
                    if isinstance(rx, re.Pattern)
                ]
    return found


def test_the_probe_that_clears_builtin_patterns_does_flag_a_stalling_one() -> None:
    assert bounded_re.catastrophic_input(bounded_re.compile_pattern(STALLING)) is not None


@pytest.mark.parametrize(("where", "pattern"), _builtin_patterns())
def test_builtin_oracle_patterns_do_not_backtrack_catastrophically(
    where: str, pattern: str
) -> None:
    # Fixed patterns run with re (no timeout) on model output: each must pass the same probe.
    assert bounded_re.catastrophic_input(bounded_re.compile_pattern(pattern)) is None, where


def test_arithmetic_refuses_an_expected_value_that_is_not_a_number() -> None:
    assert validate_spec("arithmetic", {}, expected="four and a half")
    assert validate_spec("arithmetic", {}, expected="four") == []
    assert validate_spec("arithmetic", {}, expected=4) == []
    nested = {"oracles": [{"name": "arithmetic"}]}
    (problem,) = validate_spec("all_of", nested, expected=[4])
    assert "is not a number" in problem
