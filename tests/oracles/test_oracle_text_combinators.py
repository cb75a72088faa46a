"""Text oracles, regex guards, combinators and the response oracle."""

from __future__ import annotations

import pytest

from apr_qa.errors import UsageError
from apr_qa.oracles import create
from apr_qa.oracles.text import DEFAULT_REGEX_MAX_CHARS


def test_strip_false_keeps_surrounding_whitespace() -> None:
    assert not create("exact", {"value": "Paris", "strip": False})(" Paris").passed
    assert create("starts_with", {"value": " P", "strip": "false"})(" Paris").passed


def test_contains_any_needs_one_and_all_needs_every() -> None:
    assert not create("contains", {"values": ["a", "b"]})("a only").passed
    assert create("contains", {"values": ["a", "z"], "mode": "any"})("a only").passed


@pytest.mark.parametrize("pattern", ["(a+)+$", "(\\w+\\s?)*$", "(?:x|(a*)*)b", "((ab)*c)*"])
def test_nested_unbounded_repetition_is_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="nests unbounded repetition"):
        create("regex", {"pattern": pattern})


@pytest.mark.parametrize(
    ("pattern", "hit", "miss"),
    [
        ("(a{1,3})+", "baaab", "bbb"),
        ("(?:ab|cd)*e", "abcde", "abcd"),
        ("\\d+(\\.\\d+)?", "pi is 3.14", "pi"),
        ("(?i)paris", "PARIS", "Lyon"),
    ],
)
def test_bounded_patterns_are_accepted(pattern: str, hit: str, miss: str) -> None:
    oracle = create("regex", {"pattern": pattern})
    assert oracle(hit).passed and not oracle(miss).passed


def test_a_regex_that_does_not_compile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not compile"):
        create("regex", {"value": "[a-"})
    with pytest.raises(UsageError, match="needs 'pattern'"):
        create("regex", {})


def test_regex_reads_a_bounded_prefix_and_says_so() -> None:
    oracle = create("regex", {"pattern": "needle", "max_chars": 100})
    verdict = oracle("x" * 200 + "needle")
    assert not verdict.passed and verdict.details["truncated"] is True
    assert "first 100 chars" in verdict.reason
    assert create("regex", {"pattern": "NEEDLE", "case_sensitive": False})("a needle").passed


@pytest.mark.parametrize("pattern", [".*a.*b", "x.+y[^z]*", "(.*)(.*)", "a.*?b.*?c"])
def test_two_wildcard_repeats_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="repeats wildcards"):
        create("regex", {"pattern": pattern})


def test_regex_on_a_megabyte_reads_only_max_chars() -> None:
    # What keeps a quadratic search bounded is the cut, so the cut is what is checked
    # (no wall-clock bound: the machine's load would decide it).
    oracle = create("regex", {"pattern": ".*ab$"})
    verdict = oracle("a" * 1_000_000)
    assert not verdict.passed and verdict.details["truncated"] is True
    assert f"first {DEFAULT_REGEX_MAX_CHARS} chars read" in verdict.reason
    # The cut is real: an answer past it is not seen, one inside it is.
    late = create("regex", {"pattern": "ab$", "max_chars": 100})
    assert not late("a" * 100 + "ab").passed
    assert late("a" * 98 + "ab").passed


def test_all_of_with_a_skipped_child_is_skipped_not_passed() -> None:
    oracle = create("all_of", {"oracles": [{"name": "garbage"}, {"name": "arithmetic"}]})
    verdict = oracle("4")  # no prompt: arithmetic has nothing to compare
    assert verdict.skipped and not verdict.passed
    children = verdict.details["children"]
    assert [c["skipped"] for c in children] == [False, True]  # type: ignore[union-attr]


def test_any_of_skips_when_nothing_passed_and_something_skipped() -> None:
    oracle = create("any_of", {"oracles": ["arithmetic", {"name": "exact", "value": "x"}]})
    assert oracle("4").skipped
    assert oracle("x").passed


def test_all_of_reports_the_first_failure() -> None:
    oracle = create("all_of", {"oracles": [{"name": "exact", "value": "a"}, "garbage"]})
    verdict = oracle("b")
    assert not verdict.passed and "first failure: exact" in verdict.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "non-empty list"),
        ({"oracles": []}, "non-empty list"),
        ({"oracles": "garbage"}, "non-empty list"),
        ({"oracles": [{"name": "garbage"}, {"name": "contians"}]}, r"oracles\[2\].*did you mean"),
        (
            {"oracles": [{"name": "all_of", "oracles": [{"name": "regex", "pattern": "("}]}]},
            "does not compile",
        ),
    ],
)
def test_bad_combinator_specs_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create("all_of", options)


def test_response_measures_word_overlap_only() -> None:
    oracle = create("response", {"min_relevance": 0.5})
    prompt = "Describe the Eiffel Tower in Paris."
    assert oracle("The Eiffel Tower stands in Paris.", prompt=prompt).passed
    assert not oracle("It is tall.", prompt=prompt).passed
    verdict = oracle("Describe the Eiffel Tower in Paris.", prompt=prompt)
    assert verdict.passed and verdict.details["relevance"] == 1.0  # the documented limit
    assert oracle("Anything", prompt=None).skipped
