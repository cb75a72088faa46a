"""The arithmetic oracle: is the first answer the output states the right number?

Expected value: ``expected`` when given (a number or numeric string, number words
allowed), else computed from the one ``a op b [op c ...]`` expression in the prompt
(+ - * / and plus, minus, times, x, multiplied by, divided by; usual precedence;
exact rational arithmetic; nothing is ever ``eval``-ed).

Answer rule (number words become digits first):

1. Numbers that stand on either side of an operator are parts of an expression,
   not answers: an output that echoes the question ("What is 2+2?") states no answer.
2. Sentences are read in order (split at ``. ! ? ;`` followed by a space, and at
   line breaks); the first sentence holding a candidate number decides.
3. Inside it, the answer region is what follows the last ``=``, else what follows
   the last answer word (is, equals, makes, gives, it's, ``:`` ...), else the whole
   sentence; if the region holds no candidate, the whole sentence is used.
4. Numbers just after a negation (not, isn't, never, no, ...) are rejected values,
   not answers. A sentence whose only candidates are negated is passed over.
5. If the region still names two different numbers ("4 or 5"), the answer is
   ambiguous and fails; otherwise that number must be within ``tolerance`` of the
   expected value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from apr_qa.oracles import Verdict, register
from apr_qa.oracles._number_words import words_to_digits
from apr_qa.oracles._options import as_float
from apr_qa.oracles._tokens import (
    Token,
    binary_operand_indexes,
    chains,
    evaluate,
    tokenize,
)

__all__ = ["Arithmetic", "arithmetic", "expected_from_prompt", "stated_answer"]

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_ANSWER_WORDS = frozenset(
    [
        "is",
        "equals",
        "equal",
        "are",
        "makes",
        "make",
        "gives",
        "give",
        "get",
        "gets",
        "was",
        "it's",
        "it’s",
        "that's",
        "that’s",
        "≈",
        ":",
    ]
)
_NEGATIONS = frozenset(
    [
        "not",
        "isn't",
        "isn’t",
        "never",
        "no",
        "nor",
        "neither",
        "aren't",
        "wasn't",
        "cannot",
        "can't",
    ]
)
# How far back a negation reaches: "not 5", "not equal to 5".
_NEGATION_REACH = 3


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(words_to_digits(text)) if s.strip()]


def expected_from_prompt(prompt: str) -> Fraction | str:
    """The value of the single expression in ``prompt``, or why there is none."""
    found: list[Fraction] = []
    for sentence in _sentences(prompt):
        tokens = tokenize(sentence)
        for first, last in chains(tokens):
            before = tokens[first - 1].text if first > 0 else ""
            after = tokens[last + 1].text if last + 1 < len(tokens) else ""
            if before == "(" or after == ")":
                return "the prompt's expression uses parentheses, which are not read"
            try:
                found.append(evaluate(tokens[first : last + 1]))
            except ZeroDivisionError:
                return "the prompt's expression divides by zero"
    if not found:
        return "no expected value and no arithmetic expression in the prompt"
    if len(found) > 1:
        return f"the prompt holds {len(found)} expressions; give 'expected'"
    return found[0]


def _negated(tokens: list[Token], index: int) -> bool:
    for back in range(1, _NEGATION_REACH + 1):
        if index - back < 0:
            return False
        tok = tokens[index - back]
        if tok.kind == "num" or tok.text in ",;":
            return False
        if tok.kind == "word" and tok.text.lower() in _NEGATIONS:
            return True
    return False


def _region_start(tokens: list[Token]) -> int:
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i].kind == "eq":
            return i + 1
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i].text.lower() in _ANSWER_WORDS:
            return i + 1
    return 0


def stated_answer(output: str) -> tuple[Fraction | None, str]:
    """The number ``output`` states as its answer, with how it was found or why none."""
    for sentence in _sentences(output):
        tokens = tokenize(sentence)
        operands = binary_operand_indexes(tokens)
        candidates = [i for i, t in enumerate(tokens) if t.kind == "num" and i not in operands]
        if not candidates:
            continue
        start = _region_start(tokens)
        region = [i for i in candidates if i >= start] or candidates
        kept = [i for i in region if not _negated(tokens, i)]
        if not kept:
            continue
        values = sorted({v for v in (tokens[i].value for i in kept) if v is not None})
        shown = sentence.strip()[:80]
        if len(values) > 1:
            listed = ", ".join(_fmt(v) for v in values)
            return None, f"states several numbers as its answer ({listed}) in {shown!r}"
        return values[0], f"answer {_fmt(values[0])} read from {shown!r}"
    return None, "states no answer (no number outside an expression)"


def _expected_value(expected: object) -> Fraction | str:
    if isinstance(expected, bool):
        return f"expected value {expected!r} is not a number"
    if isinstance(expected, int):
        return Fraction(expected)
    if isinstance(expected, float):
        if expected != expected or expected in (float("inf"), float("-inf")):
            return f"expected value {expected!r} is not a finite number"
        return Fraction(repr(expected))
    if isinstance(expected, str):
        tokens = tokenize(words_to_digits(expected.strip()))
        if len(tokens) == 1 and tokens[0].value is not None:
            return tokens[0].value
    return f"expected value {expected!r} is not a number"


@dataclass(frozen=True)
class Arithmetic:
    """Judges the number an output states against the expected result."""

    tolerance: Fraction

    def check_expected(self, expected: object) -> str | None:
        """Why ``expected`` cannot be compared with an answer, or None when it can."""
        target = _expected_value(expected)
        if isinstance(target, str):
            return f"oracle 'arithmetic': {target}; give a number such as 4 or \"4\""
        return None

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when the stated answer is within ``tolerance`` of the expected value."""
        if expected is not None:
            target = _expected_value(expected)
            source = "expected"
        elif prompt is not None:
            target = expected_from_prompt(prompt)
            source = "prompt"
        else:
            target = "no expected value and no prompt to compute one from"
            source = "none"
        if isinstance(target, str):
            return Verdict.skip(f"arithmetic: {target}", rule="arithmetic", source=source)
        answer, how = stated_answer(output)
        facts: dict[str, object] = {
            "rule": "arithmetic",
            "source": source,
            "expected": _fmt(target),
            "tolerance": float(self.tolerance),
        }
        if answer is None:
            return Verdict.fail(f"arithmetic: expected {_fmt(target)}; output {how}", **facts)
        facts["answer"] = _fmt(answer)
        if abs(answer - target) <= self.tolerance:
            return Verdict.ok(f"arithmetic: expected {_fmt(target)}, {how}", **facts)
        return Verdict.fail(f"arithmetic: expected {_fmt(target)}, but {how}", **facts)


@register("arithmetic")
def arithmetic(*, tolerance: object = 1e-6) -> Arithmetic:
    """The arithmetic oracle; ``tolerance`` is the largest absolute error accepted."""
    value = as_float("arithmetic", "tolerance", tolerance, minimum=0.0)
    return Arithmetic(Fraction(repr(value)))
