"""Garbage (G4): each rule fires on its defect, stays quiet on clean text, names itself."""

from __future__ import annotations

import pytest

from apr_qa.oracles import create

GARBAGE = create("garbage", {})


@pytest.mark.parametrize(
    ("output", "rule"),
    [
        ("", "empty"),
        (" \n\t", "empty"),
        ("Hello\x00world", "control_chars"),
        ("Hello\x1bworld", "control_chars"),
        ("bad \ud800 surrogate", "control_chars"),
        ("caf\ufffd au lait", "replacement_char"),
        ("[PAD][PAD]", "pad_flood"),
        ("Answer<|pad|>", "pad_flood"),
        ("Sure<|endoftext|>", "special_tokens"),
        ("[INST] hi", "special_tokens"),
        ("HelloĊWorld", "bpe_artefacts"),
        ("â€™quoted", "bpe_artefacts"),
        ("nan inf -inf", "nan_inf"),
        ("yes yes yes yes", "repetition_run"),
        ("Hello world. Hello world. Hello world. Hello world.", "repetition_run"),
        ("Zzzzzzzzzzzz", "letter_run"),
        ("ab ab, ba ba! ab ab. ba ba? ab ab; ba", "low_unique_chars"),
        ("?!?! ...... ;;;; ---", "symbols_only"),
    ],
)
def test_each_rule_fires_on_its_defect_and_names_itself(output: str, rule: str) -> None:
    verdict = GARBAGE(output)
    assert not verdict.passed and not verdict.skipped
    assert verdict.details["rule"] == rule
    assert verdict.reason.startswith(f"garbage: {rule}: ")


def test_several_rules_are_all_listed() -> None:
    verdict = GARBAGE("<pad> \x00 \ufffd")
    assert verdict.details["rules"] == ["control_chars", "replacement_char", "pad_flood"]
    assert "+2 more" in verdict.reason


def test_a_fluent_six_word_answer_is_not_repetitive() -> None:
    """The original flagged any six-word answer as repetitive."""
    for answer in (
        "The capital of France is Paris.",
        "I think the answer is four.",
        "Yes, yes, I agree with you.",
    ):
        verdict = GARBAGE(answer)
        assert verdict.passed, verdict.reason


def test_words_that_contain_nan_or_inf_are_words() -> None:
    """The original called "information" an Inf."""
    text = "Information on infinite sums: Nancy found nanometre-scale influence. Infinity."
    assert GARBAGE(text).passed
    assert GARBAGE("The result is NaN, and 1/0 is inf.").passed  # two mentions are an answer
    assert not GARBAGE("NaN, NaN, inf").passed


def test_low_entropy_fires_when_unique_chars_is_relaxed() -> None:
    oracle = create("garbage", {"min_unique_chars": 0})
    verdict = oracle("a" * 40 + "b")
    assert verdict.details["rules"] == ["letter_run", "low_entropy"]
    # "abab…" carries exactly 1 bit per character: at the bound, not below it.
    assert oracle("ab" * 20).passed
    assert not create("garbage", {"min_unique_chars": 0, "min_entropy": 1.5})("ab" * 20).passed


def test_character_rules_wait_for_enough_characters() -> None:
    short = "abab abab"  # 2 distinct letters but short: an initialism, a chant
    assert GARBAGE(short).passed
    assert not create("garbage", {"char_stats_min_length": 5})(short).passed


def test_numeric_data_is_judged_by_repetition_not_by_its_alphabet() -> None:
    matrix = "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]"
    assert GARBAGE(matrix).passed
    assert not GARBAGE("7 " * 30).passed


def test_pad_token_option_adds_to_the_defaults() -> None:
    oracle = create("garbage", {"pad_token": ["<|fill|>"]})
    assert not oracle("x<|fill|>").passed
    assert not oracle("x<pad>").passed


def test_special_tokens_option_replaces_the_defaults() -> None:
    oracle = create("garbage", {"special_tokens": ["<|eot_id|>"]})
    assert not oracle("Bye<|eot_id|>").passed
    assert oracle("An HTML <s>strike</s> tag").passed
    assert not GARBAGE("An HTML <s>strike</s> tag").passed


def test_a_clean_output_passes_with_its_length_in_the_reason() -> None:
    verdict = GARBAGE("Paris")
    assert verdict.passed and verdict.details == {"rule": None, "rules": []}
    assert "5 chars" in verdict.reason


def test_a_single_leading_bpe_marker_is_not_enough() -> None:
    assert GARBAGE("Ġurnal").passed  # Maltese capital Ġ, at a word start
    assert not GARBAGE("ĠHelloĠworld").passed
