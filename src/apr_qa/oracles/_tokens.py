"""Arithmetic tokens: numbers, operators, ``=`` and words, read from one sentence.

Shared by the arithmetic oracle's two readers: the prompt (which expression was
asked?) and the output (which number was answered?).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Token", "binary_operand_indexes", "chains", "evaluate", "tokenize"]

# Numbers longer than this are not read: a digit flood is not an answer, and
# Python refuses to parse integers of thousands of digits anyway.
_MAX_DIGITS = 60
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?)"
    r"|(?P<word>[A-Za-z]+(?:['’][A-Za-z]+)?)"
    r"|(?P<op>[-+*/×÷−])"
    r"|(?P<eq>=)"
    r"|(?P<other>\S)"
)
_SYMBOL_OPS = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "/": "/", "÷": "/"}
_WORD_OPS = {"plus": "+", "minus": "-", "times": "*", "x": "*", "multiplied": "*", "divided": "/"}


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is num, op, eq, word or other."""

    kind: str
    text: str
    start: int
    end: int
    value: Fraction | None = None
    op: str | None = None


def tokenize(sentence: str) -> list[Token]:
    """Tokens of ``sentence``, with unary minus folded into numbers and word operators read."""
    raw: list[Token] = []
    for match in _TOKEN.finditer(sentence):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind == "num":
            digits = text.replace(",", "")
            if len(digits) > _MAX_DIGITS:
                raw.append(Token("other", text, match.start(), match.end()))
                continue
            raw.append(Token("num", text, match.start(), match.end(), Fraction(digits)))
        elif kind == "op":
            raw.append(Token("op", text, match.start(), match.end(), op=_SYMBOL_OPS[text]))
        elif kind == "word" and text.lower() in _WORD_OPS:
            raw.append(Token("op", text, match.start(), match.end(), op=_WORD_OPS[text.lower()]))
        else:
            raw.append(Token(kind, text, match.start(), match.end()))
    return _fold(raw)


def _fold(raw: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        prev = out[-1] if out else None
        # "multiplied by", "divided by": the "by" belongs to the operator.
        if tok.kind == "op" and tok.text.lower() in ("multiplied", "divided"):
            if nxt is not None and nxt.kind == "word" and nxt.text.lower() == "by":
                out.append(tok)
                i += 2
                continue
            out.append(Token("word", tok.text, tok.start, tok.end))
            i += 1
            continue
        # A minus glued to the number after it, with no number before it, is a sign.
        if (
            tok.op == "-"
            and tok.text != "minus"
            and nxt is not None
            and nxt.kind == "num"
            and nxt.start == tok.end
            and (prev is None or prev.kind != "num")
            and nxt.value is not None
        ):
            out.append(Token("num", tok.text + nxt.text, tok.start, nxt.end, -nxt.value))
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def binary_operand_indexes(tokens: list[Token]) -> set[int]:
    """Indexes of numbers that stand on either side of a binary operator."""
    operands: set[int] = set()
    for i in range(1, len(tokens) - 1):
        if tokens[i].kind == "op" and tokens[i - 1].kind == "num" and tokens[i + 1].kind == "num":
            operands.update((i - 1, i + 1))
    return operands


def chains(tokens: list[Token]) -> list[tuple[int, int]]:
    """``(first, last)`` token indexes of each maximal ``num (op num)+`` run."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        j = i
        while (
            tokens[j].kind == "num"
            and j + 2 < len(tokens)
            and tokens[j + 1].kind == "op"
            and tokens[j + 2].kind == "num"
        ):
            j += 2
        if j > i:
            found.append((i, j))
            i = j + 1
        else:
            i += 1
    return found


def evaluate(tokens: list[Token]) -> Fraction:
    """Value of ``num (op num)*`` with the usual precedence; ZeroDivisionError on x/0."""
    nums: list[Fraction] = []
    ops: list[str] = []
    for index, tok in enumerate(tokens):
        if index % 2 == 0 and tok.value is not None:
            nums.append(tok.value)
        elif index % 2 == 1 and tok.op is not None:
            ops.append(tok.op)
        else:
            raise ValueError(f"not an arithmetic chain at {tok.text!r}")
    terms = [nums[0]]
    pending: list[str] = []
    for op, value in zip(ops, nums[1:], strict=True):
        if op == "*":
            terms[-1] *= value
        elif op == "/":
            terms[-1] /= value
        else:
            pending.append(op)
            terms.append(value)
    total = terms[0]
    for op, term in zip(pending, terms[1:], strict=True):
        total = total + term if op == "+" else total - term
    return total
