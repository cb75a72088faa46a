"""Arithmetic: two operands, an operator and a phrasing; the expected value is computed.

The distribution is chosen for what it probes in real models, and written out
in docs/scenarios.md (a test samples it and compares):

* operators ``+ - *``, equally likely;
* operand sizes by digit count (``DIGITS``), so carries, borrows and long
  numbers all come up; a multiplier has at most two digits (``MULTIPLIER_DIGITS``);
* nine phrasings (``PHRASINGS``), one per way a user asks: a bare expression to
  complete, terse and polite commands, operator words, named operations, verbs
  that reverse the operand order ("Subtract 5 from 12"), spelled-out numbers,
  a Q/A completion and a conversational request.

No phrasing is the form the bundled fixture models were trained on ("What is
7 + 8?"): a generated scenario asks what a real user would, not what a fixture
memorised. A sampled subtraction has ``a >= b`` so its answer is never negative;
a shrunk one may be (the expected value is still exact).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from apr_qa.gates import Category
from apr_qa.playbook.model import OracleSpec
from apr_qa.scenarios.family import Draft, Family, Params, param_int, param_str

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "DIGITS",
    "FAMILY",
    "MULTIPLIER_DIGITS",
    "OPERATORS",
    "PHRASINGS",
    "Phrasing",
    "compute",
    "spelled",
]

OPERATORS: tuple[str, ...] = ("+", "-", "*")
# (digit count, weight) of an operand: mostly short numbers, some long ones.
DIGITS: tuple[tuple[int, int], ...] = ((1, 4), (2, 3), (3, 2), (4, 1))
# The second operand of a product: long multiplication of two long numbers is a
# different skill from the one this family measures.
MULTIPLIER_DIGITS: tuple[tuple[int, int], ...] = ((1, 4), (2, 3))


@dataclass(frozen=True)
class Phrasing:
    """One way of asking: a template per operator over ``{a}`` and ``{b}``.

    ``spelled`` phrasings write the operands as English words ("twelve").
    ``weight`` is the phrasing's share of draws, out of the sum of all weights.
    """

    name: str
    weight: int
    templates: Mapping[str, str]
    spelled: bool = False

    def render(self, a: int, op: str, b: int) -> str:
        """The question for ``a op b``."""
        x, y = (spelled(a), spelled(b)) if self.spelled else (str(a), str(b))
        return self.templates[op].format(a=x, b=y)


def _phrasing(name: str, weight: int, plus: str, minus: str, times: str, **kw: bool) -> Phrasing:
    return Phrasing(name, weight, MappingProxyType({"+": plus, "-": minus, "*": times}), **kw)


# Index 0 is the simplest phrasing: shrinking moves towards it.
PHRASINGS: tuple[Phrasing, ...] = (
    _phrasing("bare expression", 2, "{a} + {b} =", "{a} - {b} =", "{a} * {b} ="),
    _phrasing("terse command", 2, "Compute {a}+{b}.", "Compute {a}-{b}.", "Compute {a}*{b}."),
    _phrasing(
        "number only",
        2,
        "Calculate {a} + {b}. Reply with the number only.",
        "Calculate {a} - {b}. Reply with the number only.",
        "Calculate {a} × {b}. Reply with the number only.",
    ),
    _phrasing(
        "operator word", 2, "What's {a} plus {b}?", "What's {a} minus {b}?", "What's {a} times {b}?"
    ),
    _phrasing(
        "named operation",
        2,
        "What is the sum of {a} and {b}?",
        "What is {b} subtracted from {a}?",
        "What is the product of {a} and {b}?",
    ),
    _phrasing("verb", 2, "Add {a} and {b}.", "Subtract {b} from {a}.", "Multiply {a} by {b}."),
    _phrasing(
        "spelled out",
        1,
        "How much is {a} plus {b}?",
        "How much is {a} minus {b}?",
        "How much is {a} times {b}?",
        spelled=True,
    ),
    _phrasing(
        "Q/A completion", 1, "Q: {a} + {b} = ?\nA:", "Q: {a} - {b} = ?\nA:", "Q: {a} * {b} = ?\nA:"
    ),
    _phrasing(
        "conversational",
        1,
        "My calculator is broken. Can you work out {a} + {b} for me?",
        "My calculator is broken. Can you work out {a} - {b} for me?",
        "My calculator is broken. Can you work out {a} x {b} for me?",
    ),
)

# fmt: off
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on


def spelled(n: int) -> str:
    """``n`` (0 to 999,999) in English words: 412 is ``four hundred twelve``."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"cannot spell {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    scale, size = ("hundred", 100) if n < 1000 else ("thousand", 1000)
    head, rest = divmod(n, size)
    return f"{spelled(head)} {scale}" + (f" {spelled(rest)}" if rest else "")


def compute(a: int, op: str, b: int) -> int:
    """The exact value of ``a op b``."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def _ints(params: Params) -> tuple[int, int, int, int]:
    """``a``, ``b``, the operator's index and the phrasing's index."""
    op = param_str(params, "op")
    return (
        param_int(params, "a"),
        param_int(params, "b"),
        OPERATORS.index(op),
        param_int(params, "phrasing"),
    )


def _operand(rng: random.Random, sizes: tuple[tuple[int, int], ...]) -> int:
    """A number with a digit count drawn from ``sizes`` (one digit includes 0)."""
    digits = rng.choices([d for d, _ in sizes], weights=[w for _, w in sizes])[0]
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def sample(rng: random.Random) -> Params:
    """An operator, a phrasing and two operands, by the weights above."""
    op = rng.choice(OPERATORS)
    phrasing = rng.choices(range(len(PHRASINGS)), weights=[p.weight for p in PHRASINGS])[0]
    a = _operand(rng, DIGITS)
    b = _operand(rng, MULTIPLIER_DIGITS if op == "*" else DIGITS)
    if op == "-" and b > a:
        a, b = b, a
    return {"a": a, "b": b, "op": op, "phrasing": phrasing}


def build(params: Params) -> Draft:
    """The prompt, the arithmetic oracle and the computed answer."""
    a, b, op_index, phrasing = _ints(params)
    op = OPERATORS[op_index]
    prompt = PHRASINGS[phrasing].render(a, op, b)
    return Draft(prompt, OracleSpec("arithmetic"), compute(a, op, b))


def describe(params: Params) -> str:
    """``17 + 9``, and the prompt when the phrasing is not the bare expression."""
    a, b, op_index, phrasing = _ints(params)
    expression = f"{a} {OPERATORS[op_index]} {b}"
    if phrasing == 0:
        return expression
    return f"{expression}, asked as {build(params).prompt!r}"


def rank(params: Params) -> tuple[object, ...]:
    """Operator, phrasing, then operands: the order the shrink strategy draws them."""
    a, b, op_index, phrasing = _ints(params)
    return (op_index, phrasing, a, b)


def shrinker(params: Params) -> SearchStrategy[Params]:
    """Operator, phrasing and operands each no further from 0 than in ``params``."""
    from hypothesis import strategies as st

    a, b, op_index, phrasing = _ints(params)
    # Drawn in rank order, so hypothesis simplifies the operator first, operands last.
    return st.tuples(
        st.integers(0, op_index),
        st.integers(0, phrasing),
        st.integers(0, a),
        st.integers(0, b),
    ).map(lambda t: {"a": t[2], "b": t[3], "op": OPERATORS[t[0]], "phrasing": t[1]})


FAMILY = Family(
    name="arithmetic",
    category=Category.QUAL.value,
    gate=None,
    sample=sample,
    build=build,
    describe=describe,
    rank=rank,
    shrinker=shrinker,
)
