"""Determinism: one fixed prompt generated twice at temperature 0 must give the same output.

The engine generates twice (``repeat=2``), compares the token ids itself, and
calls the ``same_tokens`` oracle registered here with the first output as
``output`` and the second as ``expected``. Two empty outputs compared nothing
(the original tool "passed" a golden-rule check on two empty strings): that is
``skipped``, never passed. A prompt is not simpler than another, so this family
has nothing to shrink.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from apr_qa.gates import Category
from apr_qa.oracles import Verdict, register
from apr_qa.playbook.model import OracleSpec
from apr_qa.scenarios.family import Draft, Family, Params, param_int, shorten

__all__ = ["FAMILY", "PROMPTS", "SameTokens", "same_tokens"]

# Long, open answers: a run that drifts (batched kernels, a KV cache reused
# between requests, a sampler that ignores temperature 0) drifts late, so every
# prompt asks for more than one line. Each is equally likely.
PROMPTS: tuple[str, ...] = (
    "Write a short story about a lighthouse keeper.",
    "List three uses for a paperclip.",
    "Explain why the sky is blue.",
    "Count from one to twenty.",
    "Write a haiku about autumn leaves.",
    "List the first ten prime numbers, separated by commas.",
)


@dataclass(frozen=True)
class SameTokens:
    """Passes when the two generations of one prompt are identical."""

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """``output`` is the first generation, ``expected`` the second."""
        if expected is None:
            return Verdict.skip("same_tokens: no second generation to compare", rule="same_tokens")
        if not isinstance(expected, str):
            return Verdict.skip(
                f"same_tokens: the second generation is not text ({type(expected).__name__})",
                rule="same_tokens",
            )
        if not output and not expected:
            return Verdict.skip(
                "same_tokens: both generations are empty; nothing was compared",
                rule="same_tokens",
            )
        if output == expected:
            return Verdict.ok(
                f"same_tokens: both generations equal ({len(output)} chars)", rule="same_tokens"
            )
        at = next(
            (i for i, (x, y) in enumerate(zip(output, expected, strict=False)) if x != y),
            min(len(output), len(expected)),
        )
        return Verdict.fail(
            f"same_tokens: generations differ from char {at}: "
            f"{shorten(output[at:], 40)} vs {shorten(expected[at:], 40)}",
            rule="same_tokens",
            first_difference=at,
        )


@register("same_tokens")
def same_tokens() -> SameTokens:
    """The determinism oracle: the first generation equals the second (given as ``expected``)."""
    return SameTokens()


def sample(rng: random.Random) -> Params:
    """One of the fixed prompts."""
    return {"prompt": rng.randrange(len(PROMPTS))}


def build(params: Params) -> Draft:
    """The prompt, judged by ``same_tokens``."""
    return Draft(PROMPTS[param_int(params, "prompt")], OracleSpec("same_tokens"))


def describe(params: Params) -> str:
    """The prompt, generated twice at temperature 0."""
    return f"{PROMPTS[param_int(params, 'prompt')]!r} twice at temperature 0"


def rank(params: Params) -> tuple[object, ...]:
    """The prompt's index (only for completeness: determinism is never shrunk)."""
    return (param_int(params, "prompt"),)


FAMILY = Family(
    name="determinism",
    category=Category.STAB.value,
    gate="F-STAB-DET-001",
    sample=sample,
    build=build,
    describe=describe,
    rank=rank,
    shrinker=None,
    repeat=2,
    temperature=0.0,
)
