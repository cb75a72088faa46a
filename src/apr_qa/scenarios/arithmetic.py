"""Arithmetic: two operands, an operator and a phrasing; the expected value is computed.

Phrasing 0 with single-digit ``+`` operands is exactly the form the project's
tiny fixture models learned ("What is 7 + 8?"), and it is drawn often (see
``_FIXTURE_SHARE``); the rest mixes operators, magnitudes and phrasings, which
a real model must handle and a memorising fixture will not. Subtraction draws
``a >= b`` so a sampled answer is never negative; a shrunk one may be (the
expected value is still exact).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from apr_qa.gates import Category
from apr_qa.playbook.model import OracleSpec
from apr_qa.scenarios.family import Draft, Family, Params, param_int, param_str

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["FAMILY", "OPERATORS", "PHRASINGS", "compute"]

OPERATORS: tuple[str, ...] = ("+", "-", "*")
_WORDS = {"+": "plus", "-": "minus", "*": "times"}
_NAMED = {
    "+": "the sum of {a} and {b}",
    "-": "{a} minus {b}",
    "*": "the product of {a} and {b}",
}
# Index 0 is the simplest phrasing: shrinking moves towards it.
PHRASINGS: tuple[str, ...] = (
    "What is {a} {op} {b}?",
    "Compute {a}{op}{b}.",
    "{a} {word} {b} equals what?",
    "Calculate {a} {op} {b}. Reply with the number only.",
    "What is {named}?",
    "Q: {a} {op} {b} = ?\nA:",
)
_FIXTURE_SHARE = 0.4
# (largest operand, weight) for the non-fixture draws.
_MAGNITUDES = ((9, 3), (99, 2), (999, 1))


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


def sample(rng: random.Random) -> Params:
    """Fixture-shaped with probability ``_FIXTURE_SHARE``, else any operator and phrasing."""
    if rng.random() < _FIXTURE_SHARE:
        return {"a": rng.randint(0, 9), "b": rng.randint(0, 9), "op": "+", "phrasing": 0}
    op = rng.choice(OPERATORS)
    # Products of three-digit numbers are a different skill; keep * to two digits.
    limits = [m for m in _MAGNITUDES if op != "*" or m[0] < 999]
    top = rng.choices([m for m, _ in limits], weights=[w for _, w in limits])[0]
    a, b = rng.randint(0, top), rng.randint(0, top)
    if op == "-" and b > a:
        a, b = b, a
    return {"a": a, "b": b, "op": op, "phrasing": rng.randrange(len(PHRASINGS))}


def build(params: Params) -> Draft:
    """The prompt, the arithmetic oracle and the computed answer."""
    a, b, op_index, phrasing = _ints(params)
    op = OPERATORS[op_index]
    named = _NAMED[op].format(a=a, b=b)
    prompt = PHRASINGS[phrasing].format(a=a, b=b, op=op, word=_WORDS[op], named=named)
    return Draft(prompt, OracleSpec("arithmetic"), compute(a, op, b))


def describe(params: Params) -> str:
    """``17 + 9``, and the prompt when the phrasing is not the plain one."""
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
