"""The garbage oracle (gate G4): is this output broken text rather than an answer?

Every rule has a name, one reason line, and a guard that keeps it off fluent text.
The original tool's false positives are the tests' first cases: a fluent six-word
answer is not repetitive (ratio rules need ``min_tokens`` word tokens), and
"information", "infinite" or "Nancy" are not NaN/Inf (only standalone tokens count).
See docs/oracles.md for each rule's exact threshold.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from apr_qa.oracles import Verdict, register
from apr_qa.oracles._options import as_choice, as_float, as_int, as_str_list

__all__ = ["DEFAULT_PAD_TOKENS", "DEFAULT_SPECIAL_TOKENS", "Garbage", "garbage"]

DEFAULT_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")
DEFAULT_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "</s>", "<s>", "[INST]")
_ALLOWED_CONTROLS = frozenset("\n\t\r")
_WORDS = re.compile(r"\w+")
_NAN_INF = re.compile(r"(?<![\w.])[-+]?(?:NaN|nan|NAN|Inf|inf|INF)(?!\w)")
# Byte-level BPE leaks: Ġ (space) and Ċ (newline) glued to the text before them,
# and UTF-8 punctuation decoded byte by byte ("âĢĻ" for ’, "â€™" in cp1252).
_BPE_GLUED = re.compile(r"(?<=\S)[ĠĊ]")
_MOJIBAKE = re.compile(r"âĢ|â€")
# A letter repeated this often in a row is no word of any language we judge.
_LETTER_RUN = re.compile(r"([^\W\d_])\1{9,}")
_SYMBOLS_ONLY_MIN_LENGTH = 8
# Loops of up to this many word tokens are caught by the run rule (a repeated
# sentence is the commonest degenerate output).
_MAX_LOOP = 12


def _entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def _longest_run(tokens: list[str]) -> tuple[int, str]:
    """The most back-to-back copies of one n-gram (n <= 12) holding a non-number.

    Linear per n: a run of k copies of an n-gram is a stretch where each token
    equals the one n places before it, (k - 1) * n tokens long.
    """
    best, best_gram = 1, ""
    for n in range(1, _MAX_LOOP + 1):
        matched = 0
        for i in range(n, len(tokens)):
            matched = matched + 1 if tokens[i] == tokens[i - n] else 0
            copies = matched // n + 1
            gram = tokens[i - n + 1 : i + 1]
            # Numbers repeat in data (an identity matrix is a run of zeros); words don't.
            if copies > best and not all(t.isdigit() for t in gram):
                best, best_gram = copies, " ".join(gram)
    return best, best_gram


def _is_numeric_data(text: str) -> bool:
    """Digits, spaces and punctuation only: a matrix or a list, not prose."""
    return not any(c.isalpha() for c in text) and any(c.isdigit() for c in text)


@dataclass(frozen=True)
class Garbage:
    """Flags outputs that break any garbage rule; passes clean text."""

    max_repetition_ratio: float
    min_tokens: int
    max_consecutive_repeats: int
    min_unique_chars: int
    min_entropy: float
    char_stats_min_length: int
    max_nan_inf: int
    pad_tokens: tuple[str, ...]
    special_tokens: tuple[str, ...]
    skip_empty: bool = False

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when no rule fires; the reason names the first rule that did."""
        if not output.strip() and self.skip_empty:
            # Silence to a prompt that asks nothing is not wrong, but it shows nothing
            # either: a model that never answers must not be corroborated by it.
            return Verdict.skip(
                f"garbage: empty output ({len(output)} chars) to a prompt that asks "
                "nothing: nothing to judge",
                rule="empty",
            )
        if not output.strip():
            return Verdict.fail(
                f"garbage: empty: output is empty or whitespace only ({len(output)} chars)",
                rule="empty",
                rules=["empty"],
            )
        fired: list[tuple[str, str]] = []
        for rule in self._rules():
            found = rule(output)
            if found is not None:
                fired.append(found)
        if not fired:
            return Verdict.ok(
                f"garbage: none of the garbage rules fired on {len(output)} chars",
                rule=None,
                rules=[],
            )
        name, why = fired[0]
        more = (
            f" (+{len(fired) - 1} more: {', '.join(n for n, _ in fired[1:])})" if fired[1:] else ""
        )
        return Verdict.fail(f"garbage: {name}: {why}{more}", rule=name, rules=[n for n, _ in fired])

    def _rules(self) -> list[Callable[[str], tuple[str, str] | None]]:
        return [
            self._control_chars,
            self._replacement_char,
            self._pad_flood,
            self._special_tokens,
            self._bpe_artefacts,
            self._nan_inf,
            self._repetition_run,
            self._repetition_ratio,
            self._letter_run,
            self._low_unique_chars,
            self._low_entropy,
            self._symbols_only,
        ]

    @staticmethod
    def _control_chars(text: str) -> tuple[str, str] | None:
        bad = [
            c
            for c in text
            if c not in _ALLOWED_CONTROLS and unicodedata.category(c) in ("Cc", "Cs")
        ]
        if not bad:
            return None
        return "control_chars", f"{len(bad)} control character(s), first U+{ord(bad[0]):04X}"

    @staticmethod
    def _replacement_char(text: str) -> tuple[str, str] | None:
        count = text.count("\ufffd")
        if not count:
            return None
        return "replacement_char", f"{count} U+FFFD replacement character(s): undecodable bytes"

    def _pad_flood(self, text: str) -> tuple[str, str] | None:
        counts = {t: text.count(t) for t in self.pad_tokens if t and t in text}
        if not counts:
            return None
        total = sum(counts.values())
        share = sum(counts[t] * len(t) for t in counts) / len(text)
        token = max(counts, key=lambda t: counts[t])
        return "pad_flood", f"{total} PAD token(s) ({token!r}) fill {share:.0%} of the output"

    def _special_tokens(self, text: str) -> tuple[str, str] | None:
        leaked = [t for t in self.special_tokens if t and t in text]
        if not leaked:
            return None
        return "special_tokens", f"leaked special token(s) {', '.join(map(repr, leaked))}"

    @staticmethod
    def _bpe_artefacts(text: str) -> tuple[str, str] | None:
        glued = len(_BPE_GLUED.findall(text))
        mojibake = len(_MOJIBAKE.findall(text))
        if not glued and not mojibake:
            return None
        return (
            "bpe_artefacts",
            f"{glued} byte-level BPE marker(s) (Ġ/Ċ) glued into words, "
            f"{mojibake} mojibake run(s) (âĢ/â€)",
        )

    def _nan_inf(self, text: str) -> tuple[str, str] | None:
        found = _NAN_INF.findall(text)
        if len(found) <= self.max_nan_inf:
            return None
        return "nan_inf", f"{len(found)} standalone NaN/Inf tokens (at most {self.max_nan_inf})"

    def _repetition_run(self, text: str) -> tuple[str, str] | None:
        copies, gram = _longest_run(_WORDS.findall(text.lower()))
        if copies <= self.max_consecutive_repeats:
            return None
        return (
            "repetition_run",
            f"{gram!r} repeated {copies} times in a row (at most {self.max_consecutive_repeats})",
        )

    def _repetition_ratio(self, text: str) -> tuple[str, str] | None:
        tokens = _WORDS.findall(text.lower())
        if len(tokens) < self.min_tokens:
            return None  # too few tokens for a share to mean anything
        counts = Counter(tokens)
        if len(counts) > 1:
            # Numbers repeat in data (a matrix, a table); a lone number repeated is a flood.
            counts = Counter({t: c for t, c in counts.items() if not t.isdigit()})
            if not counts:
                return None
        token, count = counts.most_common(1)[0]
        share = count / len(tokens)
        if share <= self.max_repetition_ratio:
            return None
        return (
            "repetition_ratio",
            f"{token!r} is {count} of {len(tokens)} word tokens ({share:.0%}, "
            f"at most {self.max_repetition_ratio:.0%})",
        )

    @staticmethod
    def _letter_run(text: str) -> tuple[str, str] | None:
        match = _LETTER_RUN.search(text)
        if match is None:
            return None
        return "letter_run", f"{match.group(1)!r} repeated {len(match.group())} times in a row"

    def _low_unique_chars(self, text: str) -> tuple[str, str] | None:
        body = text.strip()
        if len(body) < self.char_stats_min_length or _is_numeric_data(body):
            return None
        unique = len(set(body))
        if unique >= self.min_unique_chars:
            return None
        return (
            "low_unique_chars",
            f"{unique} distinct characters in {len(body)} (at least {self.min_unique_chars})",
        )

    def _low_entropy(self, text: str) -> tuple[str, str] | None:
        body = text.strip()
        if len(body) < self.char_stats_min_length or _is_numeric_data(body):
            return None
        bits = _entropy(body)
        if bits >= self.min_entropy:
            return None
        return "low_entropy", f"character entropy {bits:.2f} bits (at least {self.min_entropy:g})"

    @staticmethod
    def _symbols_only(text: str) -> tuple[str, str] | None:
        body = "".join(text.split())
        if len(body) < _SYMBOLS_ONLY_MIN_LENGTH or any(c.isalnum() for c in body):
            return None
        return "symbols_only", f"{len(body)} characters and not one letter or digit"


@register("garbage")
def garbage(
    *,
    max_repetition_ratio: object = 0.3,
    min_tokens: object = 20,
    max_consecutive_repeats: object = 3,
    min_unique_chars: object = 10,
    min_entropy: object = 1.0,
    char_stats_min_length: object = 32,
    max_nan_inf: object = 2,
    pad_token: object = None,
    special_tokens: object = None,
    empty: object = "fail",
) -> Garbage:
    """The garbage oracle; ``pad_token`` adds to the default PAD tokens,
    ``special_tokens`` replaces the default list (``[]`` turns the rule off),
    ``empty: skip`` makes an empty output skipped instead of garbage."""
    name = "garbage"
    ratio = as_float(name, "max_repetition_ratio", max_repetition_ratio, minimum=0.0, maximum=1.0)
    pads: tuple[str, ...] = DEFAULT_PAD_TOKENS
    if pad_token is not None:
        pads = (*as_str_list(name, "pad_token", pad_token), *DEFAULT_PAD_TOKENS)
    specials: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS
    if special_tokens is not None:
        specials = tuple(as_str_list(name, "special_tokens", special_tokens))
    return Garbage(
        max_repetition_ratio=ratio,
        min_tokens=as_int(name, "min_tokens", min_tokens, minimum=2),
        max_consecutive_repeats=as_int(
            name, "max_consecutive_repeats", max_consecutive_repeats, minimum=1
        ),
        min_unique_chars=as_int(name, "min_unique_chars", min_unique_chars),
        min_entropy=as_float(name, "min_entropy", min_entropy, minimum=0.0),
        char_stats_min_length=as_int(name, "char_stats_min_length", char_stats_min_length),
        max_nan_inf=as_int(name, "max_nan_inf", max_nan_inf),
        pad_tokens=tuple(dict.fromkeys(pads)),
        special_tokens=specials,
        skip_empty=as_choice(name, "empty", empty, ("fail", "skip")) == "skip",
    )
