"""The registry: names, did-you-mean, option checking before any model runs."""

from __future__ import annotations

import pytest

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, create, names, parse_spec, register, validate_spec

BUILT_INS = {
    "all_of",
    "any_of",
    "arithmetic",
    "code_syntax",
    "contains",
    "exact",
    "garbage",
    "json_schema",
    "not_contains",
    "regex",
    "response",
    "starts_with",
}


def test_every_built_in_is_registered_on_import() -> None:
    assert set(names()) >= BUILT_INS


def test_unknown_name_is_a_usage_error_with_did_you_mean() -> None:
    with pytest.raises(
        UsageError, match=r"unknown oracle 'arithmatic' \(did you mean 'arithmetic'\?\)"
    ):
        create("arithmatic", {})


def test_unknown_name_far_from_any_has_no_hint_but_lists_the_known() -> None:
    with pytest.raises(UsageError) as info:
        create("zzzzzz", {})
    assert "did you mean" not in str(info.value)
    assert "garbage" in str(info.value)


def test_a_non_string_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown oracle 3"):
        create(3, {})  # type: ignore[arg-type]


def test_unknown_option_is_a_usage_error_with_did_you_mean() -> None:
    with pytest.raises(
        UsageError, match=r"unknown option 'tolerence' \(did you mean 'tolerance'\?\)"
    ):
        create("arithmetic", {"tolerence": 0.01})


def test_validate_spec_returns_problems_instead_of_raising() -> None:
    assert validate_spec("garbage", {"max_repetition_ratio": 0.3, "min_unique_chars": 10}) == []
    problems = validate_spec("garbage", {"max_repetition_ratio": "lots"})
    assert len(problems) == 1 and "max_repetition_ratio" in problems[0]
    assert validate_spec("nope") and validate_spec("regex", {"pattern": "("})


def test_options_default_to_none() -> None:
    assert create("garbage")("Paris").passed


def test_register_adds_a_factory_and_refuses_a_second_under_the_same_name() -> None:
    def factory(*, word: str = "x"):  # type: ignore[no-untyped-def]
        def oracle(output: str, *, prompt: str | None = None, expected: object = None) -> Verdict:
            return Verdict(word in output, f"has {word}")

        return oracle

    register("test_has_word")(factory)
    register("test_has_word")(factory)  # the same factory again is harmless
    assert create("test_has_word", {"word": "y"})("yes").passed
    assert not create("test_has_word", {"word": "y"})("no").passed
    with pytest.raises(UsageError, match="unknown option 'wrd'"):
        create("test_has_word", {"wrd": "y"})
    with pytest.raises(ValueError, match="already registered"):
        register("test_has_word")(lambda: factory())


def test_a_factory_with_var_keywords_takes_any_option() -> None:
    @register("test_any_options")
    def factory(**options: object):  # type: ignore[no-untyped-def]
        def oracle(output: str, *, prompt: str | None = None, expected: object = None) -> Verdict:
            return Verdict.ok(f"{sorted(options)}")

        return oracle

    assert create("test_any_options", {"a": 1, "b": 2})("x").reason == "['a', 'b']"


def test_a_skipped_verdict_cannot_be_passed() -> None:
    with pytest.raises(ValueError, match="skipped"):
        Verdict(True, "both", skipped=True)
    skipped = Verdict.skip("nothing to compare", rule="x")
    assert skipped.skipped and not skipped.passed and skipped.details == {"rule": "x"}


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("garbage", ("garbage", {})),
        ({"name": "contains", "value": "x"}, ("contains", {"value": "x"})),
        (
            {"type": "garbage", "config": {"min_unique_chars": 5}},
            ("garbage", {"min_unique_chars": 5}),
        ),
    ],
)
def test_parse_spec_reads_both_dialects(
    spec: object, parsed: tuple[str, dict[str, object]]
) -> None:
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["garbage"], "must be a name or a mapping"),
        ({"value": "x"}, "exactly one of 'name' or 'type'"),
        ({"name": "a", "type": "b"}, "exactly one of 'name' or 'type'"),
        ({"name": 3}, "must be a string"),
        ({"type": "garbage", "config": [1]}, "'config' must be a mapping"),
        ({"type": "contains", "value": "a", "config": {"value": "b"}}, "given twice"),
    ],
)
def test_parse_spec_rejects_malformed_entries(spec: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_spec(spec)
