"""The ``response`` oracle (upstream dialect): a lexical relevance check.

Relevance is the share of the prompt's content words (lower-cased words of three
or more letters that are not stop words) that reappear in the output, a word
counting when the output has a word sharing its first five letters ("reverse",
"reversed"). It passes when relevance >= ``min_relevance`` (upstream default 0.2).
It measures word overlap, not meaning: an output that merely repeats the prompt
scores 1.0 (pair it with other oracles). A prompt with no content words ("What is
2+2?"), or no prompt, is skipped; an empty output fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apr_qa.oracles import Verdict, register
from apr_qa.oracles._options import as_float

__all__ = ["Response", "content_words", "response"]

_WORD = re.compile(r"[^\W\d_]{3,}")
_STEM = 5
_STOP_WORDS = frozenset(
    """
    the and for are but not you all any can had her was one our out has him his how its
    may new now old see two way who did get let put say she too use what when where which
    while with would could should will shall this that these those there their them then
    than they from into onto about above after again also been before being below between
    both does doing down during each few further have having here more most other over
    same some such only own very just your yours ours hers itself myself why whom because
    until upon please tell give show explain answer question write make like
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


def content_words(text: str) -> set[str]:
    """The content words of ``text`` (see module doc)."""
    return {w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOP_WORDS}


@dataclass(frozen=True)
class Response:
    """Checks that an output shares enough content words with its prompt."""

    min_relevance: float

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when the relevance reaches ``min_relevance``."""
        if not output.strip():
            return Verdict.fail("response: the output is empty", rule="response")
        wanted = content_words(prompt or "")
        if not wanted:
            return Verdict.skip(
                "response: the prompt has no content words to look for", rule="response"
            )
        stems = {w[:_STEM] for w in content_words(output)}
        found = sorted(w for w in wanted if w[:_STEM] in stems)
        relevance = len(found) / len(wanted)
        facts: dict[str, object] = {
            "rule": "response",
            "relevance": round(relevance, 4),
            "min_relevance": self.min_relevance,
            "found": found,
        }
        summary = (
            f"response: {len(found)} of {len(wanted)} prompt content words in the output "
            f"(relevance {relevance:.2f}, at least {self.min_relevance:.2f})"
        )
        if relevance >= self.min_relevance:
            return Verdict.ok(summary, **facts)
        return Verdict.fail(summary, **facts)


@register("response")
def response(*, min_relevance: object = 0.2) -> Response:
    """The response oracle; ``min_relevance`` is a share between 0 and 1."""
    return Response(as_float("response", "min_relevance", min_relevance, minimum=0.0, maximum=1.0))
