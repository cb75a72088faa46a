"""Option values: the upstream dialect's quoted spellings, and clear errors otherwise."""

from __future__ import annotations

import pytest

from apr_qa.errors import UsageError
from apr_qa.oracles import create, validate_spec


def test_quoted_booleans_and_numbers_from_the_upstream_dialect_are_read() -> None:
    assert create("contains", {"value": "A", "case_sensitive": "false"})("a").passed
    assert not create("contains", {"value": "A", "case_sensitive": "true"})("a").passed
    assert create("arithmetic", {"tolerance": "1e-2"})("4.005", expected=4).passed
    assert not create("arithmetic", {"tolerance": "1e-3"})("4.005", expected=4).passed
    # "cat" is half of 20 word tokens, never twice in a row.
    cats = " ".join(f"cat {w}" for w in "abcdefghij")
    assert not create("garbage", {"min_tokens": 20})(cats).passed
    assert create("garbage", {"min_tokens": "25"})(cats).passed


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("contains", {"value": "a", "case_sensitive": "maybe"}, "must be true or false"),
        ("arithmetic", {"tolerance": "lots"}, "must be a number"),
        ("arithmetic", {"tolerance": float("nan")}, "must be a number"),
        ("arithmetic", {"tolerance": True}, "must be a number"),
        ("arithmetic", {"tolerance": -1}, "at least 0"),
        ("response", {"min_relevance": 2}, "at most 1"),
        ("garbage", {"min_tokens": 1}, "integer >= 2"),
        ("garbage", {"min_tokens": "many"}, "integer >= 2"),
        ("garbage", {"min_tokens": 2.5}, "integer >= 2"),
        ("garbage", {"max_repetition_ratio": 1.5}, "at most 1"),
        ("garbage", {"special_tokens": [1]}, "list of strings"),
        ("contains", {"value": 3}, "must be a string"),
        ("contains", {"value": "a", "values": ["b"]}, "not both"),
        ("contains", {"values": []}, "must not be empty"),
        ("contains", {}, "needs 'value', 'values' or the scenario's 'expected'"),
        ("contains", {"value": "a", "mode": "some"}, "'all' or 'any'"),
        ("code_syntax", {"language": "cobol"}, "unknown language 'cobol'"),
        ("code_syntax", {"languages": [7]}, "list of strings"),
    ],
)
def test_invalid_option_values_are_usage_errors(
    name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        create(name, options)
    assert validate_spec(name, options)


def test_digit_strings_count_as_integers() -> None:
    assert create("garbage", {"max_consecutive_repeats": "5"})("go go go go go").passed
    assert not create("garbage", {"max_consecutive_repeats": 4})("go go go go go").passed
