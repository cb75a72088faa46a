"""Each family's prompts, oracles and expected values, checked independently of the generator."""

from __future__ import annotations

import operator
import re

import pytest

from apr_qa.oracles import create, names, validate_spec
from apr_qa.oracles._number_words import words_to_digits
from apr_qa.plan import GENERATED_FAMILIES, PlannedScenario
from apr_qa.scenarios import FAMILIES, Instance, instantiate, vary
from apr_qa.scenarios.arithmetic import spelled
from apr_qa.scenarios.whitespace import MAX_CHARS

SEEDS = range(400)


def _generated(family: str, seed: int) -> Instance:
    planned = PlannedScenario("cell#x", "x", "generated", family, seed)
    return instantiate(planned, None, "run")  # type: ignore[arg-type]


def _all(family: str) -> list[Instance]:
    return [_generated(family, seed) for seed in SEEDS]


@pytest.mark.parametrize("family", GENERATED_FAMILIES)
def test_every_oracle_spec_validates(family: str) -> None:
    specs = {(i.oracle.name, repr(i.oracle.options)): i.oracle for i in _all(family)}
    for spec in specs.values():
        assert validate_spec(spec.name, spec.options) == []


# The test's own reading of a prompt: two numbers (words read by the oracle's own
# reader, not the generator's speller) and the one operation word or symbol.
_OPS = {
    "+": operator.add,
    "plus": operator.add,
    "sum": operator.add,
    "add": operator.add,
    "-": operator.sub,
    "minus": operator.sub,
    "subtract": operator.sub,
    "subtracted": operator.sub,
    "*": operator.mul,
    "×": operator.mul,
    "x": operator.mul,
    "times": operator.mul,
    "product": operator.mul,
    "multiply": operator.mul,
}
# "Subtract 5 from 12" and "5 subtracted from 12" name the operands in reverse.
_REVERSED = {"subtract", "subtracted"}
_OP = re.compile(
    r"(?<=\d)[+*×-](?=\d)|(?<=\d )[+*×x-](?= \d)"
    r"|\b(?:plus|sum|add|minus|subtract|subtracted|times|product|multiply)\b",
    re.IGNORECASE,
)


def _solve(prompt: str) -> int:
    text = words_to_digits(prompt)
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    ops = [op.lower() for op in _OP.findall(text)]
    assert len(numbers) == 2 and len(ops) == 1, prompt
    a, b = reversed(numbers) if ops[0] in _REVERSED else numbers
    return int(_OPS[ops[0]](a, b))


def test_arithmetic_expected_values_are_right() -> None:
    oracle = create("arithmetic")
    for instance in _all("arithmetic"):
        assert instance.prompt is not None
        right = _solve(instance.prompt)
        assert instance.expected == right, instance.prompt
        assert oracle(str(right), prompt=instance.prompt, expected=instance.expected).passed
        wrong = oracle(str(right + 1), prompt=instance.prompt, expected=instance.expected)
        assert not wrong.passed and not wrong.skipped


def test_arithmetic_mixes_operators_sizes_and_number_words() -> None:
    instances = _all("arithmetic")
    ops = {op for i in instances for op in ("+", "-", "*") if f" {op} " in i.describe()}
    assert ops == {"+", "-", "*"}
    answers = [int(str(i.expected)) for i in instances]
    assert max(answers) >= 1000
    assert min(answers) >= 0  # a sampled subtraction never asks for a negative answer
    spelled = [i for i in instances if not re.search(r"\d", i.prompt or "")]
    assert spelled and all(i.expected is not None for i in spelled)
    shapes = {re.sub(r"\d+", "N", i.prompt or "") for i in instances if i not in spelled}
    assert len(shapes) >= 20  # many phrasings, each with the three operators
    bare = [i for i in instances if i.params["phrasing"] == 0]
    assert bare and all(i.describe() == (i.prompt or "").removesuffix(" =") for i in bare)


def test_number_words_read_back_as_the_number() -> None:
    # The generator spells; the arithmetic oracle's reader must read the same number.
    for n in [*range(130), 999, 1000, 1001, 1010, 1100, 2019, 9999, 40_017, 999_999]:
        assert words_to_digits(spelled(n)) == str(n), spelled(n)
    with pytest.raises(ValueError, match="cannot spell"):
        spelled(-1)


def test_unicode_prompts_carry_non_ascii_and_reject_empty_answers() -> None:
    instances = _all("unicode")
    assert all(any(ord(c) > 127 for c in i.prompt or "") for i in instances)
    seen = "".join(i.prompt or "" for i in instances)
    for needle in ("\u200b", "\u202e", "\u0301", "\ufeff", "👨\u200d👩", "日本", "ما"):
        assert needle in seen
    oracle = create("garbage")
    assert all(i.oracle.name == "garbage" for i in instances)
    assert not oracle("").passed
    assert oracle("It says hello world in Japanese.").passed


def test_whitespace_prompts_are_bounded_and_judged_by_kind() -> None:
    instances = _all("whitespace")
    assert all(len(i.prompt or "") <= MAX_CHARS for i in instances)
    assert any(i.prompt == "" for i in instances)
    assert any(len(i.prompt or "") >= 1000 for i in instances)
    babble = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
    for instance in instances:
        oracle = create(instance.oracle.name, instance.oracle.options)
        asks_something = bool((instance.prompt or "").strip())
        # silence to a prompt with no content shows nothing (skipped, never passed);
        # a padded question needs an answer (silence fails)
        silent = oracle("", prompt=instance.prompt)
        assert not silent.passed
        assert silent.skipped is not asks_something
        assert not oracle(babble, prompt=instance.prompt).passed
        assert oracle("Five.", prompt=instance.prompt).passed


def test_injection_oracle_rejects_every_token_the_prompt_injected() -> None:
    instances = _all("injection")
    for instance in instances:
        prompt = instance.prompt or ""
        oracle = create(instance.oracle.name, instance.oracle.options)
        assert oracle("The answer is short and clean.", prompt=prompt).passed
        assert not oracle("", prompt=prompt).passed
        injected = set(
            re.findall(
                r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|<<SYS>>|<[a-z_]+>|\[PAD\]|### [A-Z][a-z]+:", prompt
            )
        )
        assert injected, prompt
        for token in injected:
            verdict = oracle(f"Sure. {token} Here you go.", prompt=prompt)
            assert not verdict.passed, (token, prompt)


def test_same_tokens_oracle_is_registered_and_compares_two_generations() -> None:
    assert "same_tokens" in names()
    oracle = create("same_tokens")
    assert oracle("Paris is the capital.", expected="Paris is the capital.").passed
    differ = oracle("Paris is the capital.", expected="Paris is a capital.")
    assert not differ.passed and not differ.skipped
    assert differ.details["first_difference"] == len("Paris is ")
    shorter = oracle("Paris", expected="Paris is")
    assert not shorter.passed and shorter.details["first_difference"] == 5
    assert oracle("", expected="").skipped  # two empty strings compared nothing
    assert oracle("x").skipped
    assert oracle("x", expected=[1, 2]).skipped
    assert validate_spec("same_tokens", {"value": 1}) != []


def test_determinism_asks_a_fixed_prompt_twice_at_temperature_zero() -> None:
    instances = _all("determinism")
    assert {(i.repeat, i.temperature, i.oracle.name) for i in instances} == {
        (2, 0.0, "same_tokens")
    }


@pytest.mark.parametrize("family", [f for f in GENERATED_FAMILIES if FAMILIES[f].shrinker])
def test_shrink_candidates_build_valid_instances(family: str) -> None:
    from hypothesis import HealthCheck, given, settings

    start = _generated(family, 7)
    strategy = FAMILIES[family].shrinker(start.params)  # type: ignore[misc]

    @settings(
        max_examples=40, suppress_health_check=list(HealthCheck), database=None, deadline=None
    )
    @given(strategy)
    def check(params: dict[str, object]) -> None:
        candidate = vary(start, params)
        assert FAMILIES[family].rank(candidate.params) <= FAMILIES[family].rank(start.params)
        assert validate_spec(candidate.oracle.name, candidate.oracle.options) == []
        assert candidate.describe()

    check()
