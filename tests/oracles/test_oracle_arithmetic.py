"""Arithmetic: the expected value, the answer rule, and the original's auto-pass bug."""

from __future__ import annotations

from fractions import Fraction

import pytest

from apr_qa.oracles import create
from apr_qa.oracles._number_words import words_to_digits
from apr_qa.oracles._tokens import evaluate, tokenize
from apr_qa.oracles.arithmetic import expected_from_prompt, stated_answer

ORACLE = create("arithmetic", {})


@pytest.mark.parametrize(
    ("prompt", "value"),
    [
        ("What is 7 + 8?", 15),
        ("7+8", 15),
        ("what's 3 times 4", 12),
        ("12 - 5", 7),
        ("6 * 7", 42),
        ("8 / 2", 4),
        ("What is seven plus eight?", 15),
        ("What is 2 + 3 * 4?", 14),
        ("What is 10 - 4 - 3?", 3),
        ("What is -3 + 5?", 2),
        ("5 - -3", 8),
        ("9 divided by 3", 3),
        ("3 multiplied by 4", 12),
        ("3 x 4", 12),
        ("6 ÷ 4", Fraction(3, 2)),
        ("What is 1,000 + 1?", 1001),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("two hundred and five minus five", 200),
    ],
)
def test_expected_is_computed_from_the_prompt(prompt: str, value: Fraction | int) -> None:
    assert expected_from_prompt(prompt) == value


@pytest.mark.parametrize(
    ("prompt", "why"),
    [
        ("(2+3)*4", "parentheses"),
        ("2 + (3 * 4)", "parentheses"),
        ("1/0", "divides by zero"),
        ("Tell me a joke", "no arithmetic expression"),
        ("1+1=2. 2+2=", "2 expressions"),
        ("2^10", "no arithmetic expression"),
    ],
)
def test_prompts_without_one_readable_expression_are_skipped(prompt: str, why: str) -> None:
    verdict = ORACLE("4", prompt=prompt)
    assert verdict.skipped and not verdict.passed
    assert why in verdict.reason


def test_no_expected_and_no_prompt_is_skipped_never_passed() -> None:
    verdict = ORACLE("4")
    assert verdict.skipped and not verdict.passed
    assert "no prompt" in verdict.reason


def test_echoing_the_prompt_never_passes() -> None:
    """The original passed "What is 2+2?" because the prompt's digits were in it."""
    for prompt in ("What is 2+2?", "What is 0 + 4?", "What is 4 * 1?"):
        verdict = ORACLE(prompt, prompt=prompt)
        assert not verdict.passed and not verdict.skipped, verdict.reason
        assert "no answer" in verdict.reason


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        ("2 + 2 = 4", 4),
        ("x = 2 + 2 = 4", 4),
        ("4 = 2 + 2", 4),
        ("2 + 2 is not 5, it is 4", 4),
        ("Not 5 but 4", 4),
        ("It is not 5. It is 4.", 4),
        ("The answer is: 4", 4),
        ("Seven plus eight gives fifteen", 15),
        ("1,000", 1000),
        ("-4", -4),
        ("The result is 3.5 exactly", Fraction(7, 2)),
    ],
)
def test_the_stated_answer(output: str, answer: int | Fraction) -> None:
    assert stated_answer(output)[0] == answer


@pytest.mark.parametrize(
    "output", ["4 or 5", "I think it is 4, but it might be 5", "2 + 2 = 4 or 5", "either 3 or 4"]
)
def test_several_different_numbers_as_the_answer_fail(output: str) -> None:
    verdict = ORACLE(output, expected=4)
    assert not verdict.passed and "several numbers" in verdict.reason


def test_only_negated_numbers_is_no_answer() -> None:
    assert stated_answer("It is not 5.")[0] is None


def test_the_first_answer_given_is_judged() -> None:
    assert not ORACLE("Step 1: add. 2 + 2 = 4", prompt="What is 2+2?").passed


@pytest.mark.parametrize(
    ("expected", "output", "passed"),
    [
        (4, "4", True),
        (4.0, "4", True),
        ("4", "four", True),
        ("four", "4", True),
        ("-4", "-4", True),
        (0.5, "0.5", True),
        (4, "5", False),
    ],
)
def test_expected_values_of_every_type(expected: object, output: str, passed: bool) -> None:
    verdict = ORACLE(output, expected=expected, prompt="What is 9 + 9?")
    assert verdict.passed is passed and verdict.details["source"] == "expected"


@pytest.mark.parametrize("expected", [True, "four apples", float("nan"), float("inf"), [4]])
def test_an_expected_value_that_is_not_a_number_is_skipped(expected: object) -> None:
    verdict = ORACLE("4", expected=expected)
    assert verdict.skipped and "not" in verdict.reason


def test_tolerance_is_an_absolute_bound() -> None:
    loose = create("arithmetic", {"tolerance": 0.01})
    assert loose("4.01", expected=4).passed
    assert not loose("4.02", expected=4).passed
    assert not ORACLE("4.01", expected=4).passed


def test_details_name_the_values_compared() -> None:
    verdict = ORACLE("5", prompt="What is 2+2?")
    assert verdict.details == {
        "rule": "arithmetic",
        "source": "prompt",
        "expected": "4",
        "tolerance": 1e-6,
        "answer": "5",
    }


def test_huge_digit_runs_are_not_numbers() -> None:
    assert stated_answer("9" * 100)[0] is None
    assert ORACLE("1" * 5000, expected=1).passed is False


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("four", "4"),
        ("twenty-one", "21"),
        ("two hundred and five", "205"),
        ("two and two", "2 and 2"),
        ("two three", "2 3"),
        ("one thousand two hundred thirty four", "1234"),
        ("zero one", "0 1"),
        ("hundred thousand", "100000"),
        ("twenty twelve", "20 12"),
        ("twenty thirty", "20 30"),
        ("hundred hundred", "100 100"),
        ("three hundred and", "300 and"),
        ("five hundred and x", "500 and x"),
        ("a million", "a 1000000"),
        ("Nothing here", "Nothing here"),
    ],
)
def test_number_words(text: str, digits: str) -> None:
    assert words_to_digits(text) == digits


def test_evaluate_refuses_what_is_not_a_chain() -> None:
    with pytest.raises(ValueError, match="not an arithmetic chain"):
        evaluate(tokenize("2 plus plus"))


def test_a_word_operator_without_by_is_a_word() -> None:
    kinds = [t.kind for t in tokenize("3 multiplied 4")]
    assert kinds == ["num", "word", "num"]
