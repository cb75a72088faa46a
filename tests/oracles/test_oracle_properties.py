"""Invariants over arbitrary text: oracles never raise; garbage tells prose from loops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apr_qa.oracles import Oracle, create

ORACLES: dict[str, Oracle] = {
    "arithmetic": create("arithmetic", {}),
    "code_syntax": create("code_syntax", {"languages": ["python", "json", "rust"]}),
    "contains": create("contains", {"value": "a", "case_sensitive": False}),
    "regex": create("regex", {"pattern": r"\d+"}),
    "json_schema": create("json_schema", {"schema": {"type": "object"}}),
    "garbage": create("garbage", {}),
    "response": create("response", {}),
    "any_of": create("any_of", {"oracles": ["garbage", "arithmetic"]}),
}

# Distinct common words: drawn without replacement, they make prose without loops.
WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "quickly",
    "returns",
    "four",
    "because",
    "seven",
    "plus",
    "eight",
    "equals",
    "fifteen",
    "and",
    "Paris",
    "is",
    "capital",
    "of",
    "France",
    "while",
    "our",
    "small",
    "test",
    "checks",
    "every",
    "output",
    "for",
    "broken",
    "text",
    "information",
    "about",
    "infinite",
    "Nancy",
    "river",
    "city",
    "bridge",
    "light",
    "music",
]


@pytest.mark.parametrize("name", sorted(ORACLES))
@settings(max_examples=150, deadline=None)
@given(output=st.text(), prompt=st.none() | st.text(), expected=st.none() | st.integers())
def test_oracles_never_raise_on_arbitrary_text(
    name: str, output: str, prompt: str | None, expected: int | None
) -> None:
    verdict = ORACLES[name](output, prompt=prompt, expected=expected)
    assert isinstance(verdict.reason, str) and verdict.reason
    assert not (verdict.passed and verdict.skipped)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=len(WORDS), unique=True))
def test_garbage_never_flags_fluent_prose(words: list[str]) -> None:
    sentence = " ".join(words).capitalize() + "."
    verdict = ORACLES["garbage"](sentence)
    assert verdict.passed, verdict.reason


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(alphabet=st.characters(categories=["Ll", "Lu"]), min_size=1, max_size=12),
    copies=st.integers(min_value=4, max_value=60),
    sep=st.sampled_from([" ", "\n", ", ", ". "]),
)
def test_garbage_always_flags_a_word_repeated_four_times_or_more(
    token: str, copies: int, sep: str
) -> None:
    verdict = ORACLES["garbage"](sep.join([token] * copies))
    assert not verdict.passed, verdict.reason


@settings(max_examples=200, deadline=None)
@given(
    # Numbers-only patterns ("0:1 0:1 …") are data by the documented exemption.
    token=st.text(
        alphabet=st.characters(blacklist_categories=["Z", "C"]), min_size=1, max_size=8
    ).filter(lambda t: any(c.isalpha() for c in t) or not any(c.isdigit() for c in t)),
    copies=st.integers(min_value=20, max_value=80),
)
def test_garbage_always_flags_any_token_repeated_twenty_times(token: str, copies: int) -> None:
    verdict = ORACLES["garbage"](" ".join([token] * copies))
    assert not verdict.passed, verdict.reason


@settings(max_examples=200, deadline=None)
@given(a=st.integers(-999, 999), b=st.integers(-999, 999), op=st.sampled_from("+-*"))
def test_arithmetic_echo_never_passes_and_the_answer_always_does(a: int, b: int, op: str) -> None:
    prompt = f"What is {a} {op} {b}?"
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    oracle = ORACLES["arithmetic"]
    assert not oracle(prompt, prompt=prompt).passed
    assert oracle(f"{a} {op} {b} = {value}", prompt=prompt).passed
    assert not oracle(f"{a} {op} {b} = {value + 1}", prompt=prompt).passed
