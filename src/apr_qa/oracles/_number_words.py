"""English number words to digits ("twenty-one" -> "21"), for the arithmetic oracle.

Only cardinal numbers up to the millions are read; a run of words that is not a
well-formed number ("two three") is converted word by word, and ``and`` joins
only after a scale word ("two hundred and five"), so "two and two" stays two numbers.
"""

from __future__ import annotations

import re

__all__ = ["words_to_digits"]

_UNITS = {
    word: value
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    word: 10 * (index + 2)
    for index, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    )
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_WORD = re.compile(r"[A-Za-z]+")
_JOIN_GAP = re.compile(r"[ \t-]+")


def _kind(word: str) -> str | None:
    if word in _UNITS:
        return "unit"
    if word in _TENS:
        return "ten"
    if word in _SCALES:
        return "scale"
    return None


def _may_follow(prev: str, word: str) -> bool:
    """Whether ``word`` continues a number that ended with ``prev``."""
    prev_kind, kind = _kind(prev), _kind(word)
    if prev == "zero" or word == "zero":
        return False
    if kind == "scale":
        # "two hundred", "twenty thousand", "hundred thousand"; not "hundred hundred".
        return prev_kind != "scale" or _SCALES[word] > _SCALES[prev]
    if prev_kind == "ten":
        return kind == "unit" and _UNITS[word] < 10
    return prev_kind == "scale"


def _value(words: list[str]) -> int:
    total = current = 0
    for word in words:
        if word in _SCALES:
            scale = _SCALES[word]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
        else:
            current += _UNITS.get(word, 0) + _TENS.get(word, 0)
    return total + current


def words_to_digits(text: str) -> str:
    """Replace each run of English number words in ``text`` by its digits."""
    matches = list(_WORD.finditer(text))
    out: list[str] = []
    cursor = 0
    i = 0
    while i < len(matches):
        first = matches[i]
        if _kind(first.group().lower()) is None:
            i += 1
            continue
        words = [first.group().lower()]
        end = first.end()
        j = i + 1
        while j < len(matches):
            gap = text[end : matches[j].start()]
            word = matches[j].group().lower()
            if _JOIN_GAP.fullmatch(gap) and _kind(word) and _may_follow(words[-1], word):
                words.append(word)
                end = matches[j].end()
                j += 1
                continue
            # "hundred and five": "and" joins only after a scale word.
            if (
                word == "and"
                and words[-1] in _SCALES
                and j + 1 < len(matches)
                and _JOIN_GAP.fullmatch(gap)
                and _JOIN_GAP.fullmatch(text[matches[j].end() : matches[j + 1].start()])
                and _kind(matches[j + 1].group().lower()) in ("unit", "ten")
            ):
                words.append(matches[j + 1].group().lower())
                end = matches[j + 1].end()
                j += 2
                continue
            break
        out.append(text[cursor : first.start()])
        out.append(str(_value(words)))
        cursor = end
        i = j
    out.append(text[cursor:])
    return "".join(out)
