"""A generated-scenario family: how it samples, builds, describes and shrinks.

Each family module (``arithmetic``, ``unicode``, ...) defines one :class:`Family`.
Parameters are a small mapping of ints, strings and tuples: everything a prompt
is built from, so the same parameters always give the same prompt, and a
shrunk counterexample is just smaller parameters.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apr_qa.playbook.model import OracleSpec

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "Draft",
    "Family",
    "Params",
    "param_int",
    "param_ints",
    "param_str",
    "shorten",
    "subsets",
]

Params = Mapping[str, object]
"""A family's parameters: hashable values (ints, strings, tuples) by name."""


@dataclass(frozen=True)
class Draft:
    """What a family builds from its parameters, before the modality shapes it."""

    prompt: str
    oracle: OracleSpec
    expected: object | None = None


@dataclass(frozen=True)
class Family:
    """One generated family.

    ``sample`` draws parameters from a seeded ``random.Random`` (no hypothesis:
    it must be cheap and stable across library versions); ``shrinker`` gives a
    hypothesis strategy of parameters no more complex than the ones it is given,
    or is None when there is nothing to shrink; ``rank`` orders parameters by
    complexity (smaller is simpler) and matches the strategy's draw order, so
    the simplest failing parameters seen can be chosen without trusting the
    order in which hypothesis happened to try them.
    """

    name: str
    category: str
    gate: str | None
    sample: Callable[[random.Random], Params]
    build: Callable[[Params], Draft]
    describe: Callable[[Params], str]
    rank: Callable[[Params], tuple[object, ...]]
    shrinker: Callable[[Params], SearchStrategy[Params]] | None = None
    repeat: int = 1
    temperature: float | None = None


def shorten(text: str, limit: int = 60) -> str:
    """``text`` as a quoted literal of at most about ``limit`` characters.

    ``repr`` escapes what cannot be seen (zero-width characters, controls, tabs)
    and keeps printable scripts (CJK, Arabic) as they are.
    """
    return repr(text if len(text) <= limit else text[:limit] + "…")


def param_int(params: Params, key: str) -> int:
    """The int parameter ``key``; a wrong type is a programming error, said plainly."""
    value = params[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"scenario parameter {key!r} must be an int, got {value!r}")
    return value


def param_str(params: Params, key: str) -> str:
    """The string parameter ``key``."""
    value = params[key]
    if not isinstance(value, str):
        raise TypeError(f"scenario parameter {key!r} must be a string, got {value!r}")
    return value


def param_ints(params: Params, key: str) -> tuple[int, ...]:
    """The tuple-of-ints parameter ``key``."""
    value = params[key]
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise TypeError(f"scenario parameter {key!r} must be a tuple of ints, got {value!r}")
    return value


def subsets(items: tuple[int, ...]) -> SearchStrategy[tuple[int, ...]]:
    """Non-empty sorted subsets of ``items``: shrinking drops pieces of a prompt.

    One keep/drop flag per item (rather than a list of items): hypothesis shrinks
    each flag towards "drop", so a piece that does not matter is always tried
    without, in order.
    """
    from hypothesis import strategies as st

    ordered = tuple(sorted(items))
    return (
        st.tuples(*(st.booleans() for _ in ordered))
        .filter(any)
        .map(lambda keep: tuple(i for i, k in zip(ordered, keep, strict=True) if k))
    )


def pick_and_subset(
    pick: str, subset: str
) -> tuple[Callable[[Params], tuple[object, ...]], Callable[[Params], SearchStrategy[Params]]]:
    """``rank`` and ``shrinker`` for a family drawn as one index plus a subset of indices.

    Simpler means a lower ``pick`` index, then fewer ``subset`` items, then earlier
    ones; shrinking searches lower indices and subsets of the items.
    """

    def rank(params: Params) -> tuple[object, ...]:
        items = param_ints(params, subset)
        return (param_int(params, pick), len(items), items)

    def shrinker(params: Params) -> SearchStrategy[Params]:
        from hypothesis import strategies as st

        return st.tuples(
            st.integers(0, param_int(params, pick)), subsets(param_ints(params, subset))
        ).map(lambda t: {pick: t[0], subset: t[1]})

    return rank, shrinker
