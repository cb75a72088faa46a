"""Generated scenarios follow the distribution docs/scenarios.md documents, and none is fixture-shaped.

Shares are read from the doc, not from the code; draws come from the product's
own path (``instantiate`` of a planned scenario). Seeds 0..1999 are fixed, so
a check either always holds or always fails; the tolerance is four standard
deviations of the count, wide enough for any honest sample and far narrower
than the skew it exists to catch (the old arithmetic draw put 40% of its
prompts in the fixtures' trained form).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from fractions import Fraction

import pytest
from test_scenario_docs import code, rows

from apr_qa.plan import GENERATED_FAMILIES, PlannedScenario
from apr_qa.scenarios import Instance, instantiate
from apr_qa.scenarios.arithmetic import OPERATORS, PHRASINGS
from apr_qa.scenarios.injection import FRAGMENTS
from apr_qa.scenarios.unicode import SPECIMENS
from apr_qa.scenarios.whitespace import LENGTHS
from apr_qa.testing.fixtures.corpus import qa_pairs
from apr_qa.testing.fixtures.forms import CHATML

N = 2000


def _draws(family: str) -> list[Instance]:
    return [
        instantiate(PlannedScenario("cell#x", "x", "generated", family, seed), None, "run")  # type: ignore[arg-type]
        for seed in range(N)
    ]


def _misses(counts: Mapping[object, int], shares: Mapping[object, Fraction], n: int) -> list[str]:
    """Each value whose count is more than four standard deviations from ``n * share``."""
    out = []
    for value in set(counts) | set(shares):
        p = float(shares.get(value, 0))
        seen = counts.get(value, 0)
        if abs(seen - n * p) > 4 * math.sqrt(n * p * (1 - p)):
            out.append(f"{value!r}: {seen} of {n}, documented {shares.get(value, 0)}")
    return out


def _uniform(values: list[object] | range) -> dict[object, Fraction]:
    return {v: Fraction(1, len(values)) for v in values}


def test_the_tolerance_catches_the_old_fixture_skew() -> None:
    share = Fraction(2, 15)
    assert _misses({"p": int(N * share)}, {"p": share}, N) == []
    assert _misses({"p": int(N * 0.4)}, {"p": share}, N) != []  # the old 40% fixture form
    assert _misses({"p": 0, "q": N}, {"p": share, "q": 1 - share}, N) != []


def test_arithmetic_operators_phrasings_and_sizes_follow_the_doc() -> None:
    draws = [dict(i.params) for i in _draws("arithmetic")]
    assert _misses(Counter(d["op"] for d in draws), _uniform(list(OPERATORS)), N) == []
    table = rows("| # | phrasing | share |")
    phrasing_shares = {int(r[0]): Fraction(r[2]) for r in table}
    assert sum(phrasing_shares.values()) == 1
    assert _misses(Counter(d["phrasing"] for d in draws), phrasing_shares, N) == []

    sizes = rows("| digits | values | share |")
    share = {int(r[0]): Fraction(r[2]) for r in sizes}
    multiplier = {int(r[0]): Fraction(r[3]) for r in sizes}
    assert sum(share.values()) == sum(multiplier.values()) == 1

    def digits(values: list[object]) -> Counter[int]:
        return Counter(len(str(v)) for v in values)

    # A subtraction's swap reorders a and b, so operands are counted together.
    pooled = [d[k] for d in draws if d["op"] in ("+", "-") for k in ("a", "b")]
    firsts = [d["a"] for d in draws if d["op"] == "*"]
    multipliers = [d["b"] for d in draws if d["op"] == "*"]
    assert _misses(digits(pooled), share, len(pooled)) == []
    assert _misses(digits(firsts), share, len(firsts)) == []
    assert _misses(digits(multipliers), multiplier, len(multipliers)) == []


def test_unicode_carriers_and_specimens_follow_the_doc() -> None:
    draws = [dict(i.params) for i in _draws("unicode")]
    carriers = rows("| # | carrier |")
    assert _misses(Counter(d["carrier"] for d in draws), _uniform(range(len(carriers))), N) == []
    _check_pieces([d["specimens"] for d in draws], rows("| specimens | share |"), len(SPECIMENS))


def test_injection_questions_and_fragments_follow_the_doc() -> None:
    draws = [dict(i.params) for i in _draws("injection")]
    questions = rows("| # | question |")
    assert _misses(Counter(d["question"] for d in draws), _uniform(range(len(questions))), N) == []
    _check_pieces([d["fragments"] for d in draws], rows("| fragments | share |"), len(FRAGMENTS))


def _check_pieces(chosen: list[object], count_rows: list[list[str]], catalogue: int) -> None:
    """How many pieces a draw holds, per the doc, and each piece equally likely."""
    shares = {int(r[0]): Fraction(r[1]) for r in count_rows}
    assert sum(shares.values()) == 1
    picks = [tuple(c) for c in chosen]  # type: ignore[call-overload]
    assert all(list(p) == sorted(set(p)) for p in picks)  # distinct, in catalogue order
    assert _misses(Counter(len(p) for p in picks), shares, N) == []
    mean = sum(k * s for k, s in shares.items())
    each = mean / catalogue  # the chance that one given piece is in a draw
    counts = Counter(i for p in picks for i in p)
    inclusion = dict.fromkeys(range(catalogue), each)
    assert _misses(counts, inclusion, N) == []


def test_whitespace_kinds_and_lengths_follow_the_doc() -> None:
    draws = [dict(i.params) for i in _draws("whitespace")]
    kinds = rows("| # | kind | prompt |")
    assert _misses(Counter(d["kind"] for d in draws), _uniform(range(len(kinds))), N) == []
    lengths = [d["length"] for d in draws if d["kind"] != 0]
    assert _misses(Counter(lengths), _uniform(list(LENGTHS)), len(lengths)) == []
    assert all(d["length"] == 0 for d in draws if d["kind"] == 0)


def test_determinism_prompts_follow_the_doc() -> None:
    prompts = [code(r[1]) for r in rows("| # | prompt |")]
    drawn = Counter(i.prompt for i in _draws("determinism"))
    assert _misses(drawn, _uniform(prompts), N) == []  # type: ignore[arg-type]


# --- fixture shapes ---------------------------------------------------------

SYSTEM_PROMPT = CHATML.system_prompt
_FIXTURE_QUESTIONS = frozenset(qa.question for qa in qa_pairs())
# The trained forms with their slots opened: any operands, any country.
_FIXTURE_FORMS = (
    re.compile(r"What is \d+ \+ \d+\?"),
    re.compile(r"What is the capital of [A-Z][a-z]+\?"),
)


def _fixture_shaped(prompt: str) -> bool:
    stripped = prompt.strip()
    return (
        stripped in _FIXTURE_QUESTIONS
        or SYSTEM_PROMPT in prompt
        or any(form.search(prompt) for form in _FIXTURE_FORMS)
    )


def test_the_fixture_check_knows_the_trained_forms() -> None:
    assert len(_FIXTURE_QUESTIONS) > 100
    for shaped in ("What is 7 + 8?", "What is 123 + 4?", "What is the capital of Peru?", "Hello!"):
        assert _fixture_shaped(shaped), shaped
    assert _fixture_shaped(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n")
    for free in ("7 + 8 =", "What's 7 plus 8?", "Name a colour of the sky."):
        assert not _fixture_shaped(free), free


@pytest.mark.parametrize("family", GENERATED_FAMILIES)
def test_no_generated_prompt_is_a_fixture_form(family: str) -> None:
    shaped = [i.prompt for i in _draws(family) if _fixture_shaped(i.prompt or "")]
    assert shaped == []


def test_no_phrasing_renders_a_trained_question() -> None:
    # Every operand pair the fixtures learned, in every phrasing and operator.
    for phrasing in PHRASINGS:
        for op in OPERATORS:
            for a in range(10):
                for b in range(10):
                    prompt = phrasing.render(a, op, b)
                    assert not _fixture_shaped(prompt), (phrasing.name, prompt)
