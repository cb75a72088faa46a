"""Whitespace edge prompts: empty, only whitespace, long runs, a question padded or spread out.

Whitespace is where tokenizers differ most (merged runs of spaces, a trailing
space that becomes its own token, CR LF, no-break and ideographic spaces), so
the prompts probe runs of every kind and length around one plain question.
Kinds are equally likely; a run's length is drawn from ``LENGTHS``; every
prompt is at most ``MAX_CHARS`` characters. Two oracles, by kind:

* A prompt with no content (empty or whitespace only) asks nothing, so silence
  is not wrong, but it shows nothing either: ``garbage`` with ``empty: skip``
  skips an empty output and passes any output that is not garbage. What is
  tested is that the model survives the prompt and does not babble; a model
  that never says anything is corroborated by nothing.
* A question with whitespace before, after, around or inside it still asks
  something: the ``garbage`` oracle judges it, and an empty answer is garbage.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from apr_qa.gates import Category
from apr_qa.playbook.model import OracleSpec, frozen_map
from apr_qa.scenarios.family import Draft, Family, Params, param_int

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["FAMILY", "KINDS", "LENGTHS", "MAX_CHARS", "QUESTION"]

MAX_CHARS = 2_000
QUESTION = "How many days are there in a week?"
# Index 0 is the simplest kind: shrinking moves towards it.
KINDS: tuple[str, ...] = (
    "empty",
    "spaces",
    "newlines",
    "tabs",
    "mixed whitespace",
    "leading whitespace",
    "trailing whitespace",
    "padded question",
    "spread question",
)
# Space, newline, tab, CR LF, no-break space, em space, ideographic space.
_MIXED = " \n\t \r\n\u00a0\u2003\u3000"
LENGTHS: tuple[int, ...] = (1, 2, 3, 8, 64, 512, MAX_CHARS - 100)
# The kinds that hold the question, and how describe() says where the whitespace is.
_HOW = {
    "leading whitespace": "after",
    "trailing whitespace": "followed by",
    "padded question": "padded with",
    "spread question": "spread out by",
}
_CONTENT_KINDS = frozenset(_HOW)
_SILENCE_OR_CLEAN = OracleSpec("garbage", frozen_map({"empty": "skip"}))


def _run(length: int) -> str:
    return (_MIXED * (length // len(_MIXED) + 1))[:length]


def _text(kind: str, length: int) -> str:
    if kind == "empty":
        return ""
    if kind in ("spaces", "newlines", "tabs"):
        return {"spaces": " ", "newlines": "\n", "tabs": "\t"}[kind] * length
    if kind == "mixed whitespace":
        return _run(length)
    if kind == "leading whitespace":
        return _run(length) + QUESTION
    if kind == "trailing whitespace":
        return QUESTION + _run(length)
    if kind == "padded question":
        return _run(length // 2) + QUESTION + _run(length - length // 2)
    # spread question: the words of the question with whitespace runs between them
    words = QUESTION.split(" ")
    gap = max(1, length // (len(words) - 1))
    return _run(gap).join(words)


def _kind(params: Params) -> str:
    return KINDS[param_int(params, "kind")]


def sample(rng: random.Random) -> Params:
    """A kind and a run length (0 for the empty prompt)."""
    kind = rng.randrange(len(KINDS))
    return {"kind": kind, "length": 0 if kind == 0 else rng.choice(LENGTHS)}


def build(params: Params) -> Draft:
    """The prompt, bounded to ``MAX_CHARS``, and its oracle (see module doc)."""
    kind = _kind(params)
    prompt = _text(kind, param_int(params, "length"))[:MAX_CHARS]
    oracle = OracleSpec("garbage") if kind in _CONTENT_KINDS else _SILENCE_OR_CLEAN
    return Draft(prompt, oracle)


def describe(params: Params) -> str:
    """``empty prompt``, ``64 newlines``, ``'How many…' padded with 512 whitespace characters``."""
    kind, length = _kind(params), param_int(params, "length")
    if kind == "empty":
        return "empty prompt"
    if kind in _CONTENT_KINDS:
        return f"{QUESTION!r} {_HOW[kind]} {length} whitespace characters"
    return f"{length} {kind}" if kind != "mixed whitespace" else f"{length} mixed whitespace"


def rank(params: Params) -> tuple[object, ...]:
    """Kind, then length."""
    return (param_int(params, "kind"), param_int(params, "length"))


def shrinker(params: Params) -> SearchStrategy[Params]:
    """Simpler kinds and shorter runs."""
    from hypothesis import strategies as st

    longest = param_int(params, "length")
    return st.tuples(
        st.integers(0, param_int(params, "kind")), st.integers(1, max(1, longest))
    ).map(lambda t: {"kind": t[0], "length": 0 if t[0] == 0 else t[1]})


FAMILY = Family(
    name="whitespace",
    category=Category.EDGE.value,
    gate="F-EDGE-001",
    sample=sample,
    build=build,
    describe=describe,
    rank=rank,
    shrinker=shrinker,
)
