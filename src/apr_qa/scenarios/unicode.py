"""Unicode edge prompts: CJK, emoji, right-to-left text, combining marks, zero-width characters.

A prompt is a carrier sentence around one to three specimens from a fixed
catalogue: a carrier is drawn uniformly, then one specimen (half the draws),
two or three (a quarter each), distinct and uniformly chosen. The specimens
cover what breaks tokenizers and detokenizers: scripts without spaces,
right-to-left text and bidi controls, combining marks, invisible characters,
astral-plane letters and emoji sequences. The carriers ask for an answer in words, because an answer made
only of emoji is flagged by the garbage oracle's symbols-only rule; a model
must answer a question it was asked in any script, so an empty answer here is
garbage (the garbage oracle's own rule). Shrinking drops specimens and moves to
simpler carriers: the counterexample names the specimen that breaks the model.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from apr_qa.gates import Category
from apr_qa.playbook.model import OracleSpec
from apr_qa.scenarios.family import (
    Draft,
    Family,
    Params,
    param_int,
    param_ints,
    pick_and_subset,
    shorten,
)

if TYPE_CHECKING:
    pass

__all__ = ["CARRIERS", "FAMILY", "SPECIMENS"]

# Index 0 is the simplest carrier: shrinking moves towards it.
CARRIERS: tuple[str, ...] = (
    "What does this say? {x}",
    "Reply in English, in one sentence, to: {x}",
    "Explain what these characters are: {x}",
    "Translate into English and explain briefly: {x}",
    "What language is this, and what does it mean? {x}",
    "{x}\n\nWhat does the text above say? Answer in English.",
)

# (label for the counterexample, text). Escapes spell out what cannot be seen.
SPECIMENS: tuple[tuple[str, str], ...] = (
    ("Chinese", "你好，世界。今天天气怎么样？"),
    ("Japanese", "日本語を話せますか？"),
    ("Korean", "안녕하세요, 반갑습니다."),
    ("emoji", "🎉😀👍🏽"),
    ("emoji ZWJ sequence", "👨\u200d👩\u200d👧\u200d👦"),
    ("flag emoji", "🇫🇷🇯🇵"),
    ("Arabic (RTL)", "ما اسمك؟ أنا من القاهرة."),
    ("Hebrew (RTL)", "שלום, מה שלומך?"),
    ("bidi override", "abc \u202edcba\u202c efg"),
    ("combining accents (NFD)", "cafe\u0301 man\u0303ana u\u0308ber"),
    ("stacked combining marks", "Z\u0336\u0322a\u0337\u0315l\u0335\u0327g\u0338o\u0334"),
    ("zero-width space/joiners", "What\u200bis\u200cthis\u200dword?"),
    ("byte order mark and word joiner", "\ufeffhello\u2060world"),
    ("astral math letters", "𝕳𝖊𝖑𝖑𝖔 𝟙𝟚𝟛"),
    ("Devanagari", "नमस्ते दुनिया"),
    ("Thai (no spaces)", "สวัสดีครับยินดีที่ได้รู้จัก"),
    ("fullwidth forms", "ＡＢＣ １２３ ？"),
)


def sample(rng: random.Random) -> Params:
    """A carrier and one to three distinct specimens."""
    count = rng.choice((1, 1, 2, 3))
    chosen = tuple(sorted(rng.sample(range(len(SPECIMENS)), count)))
    return {"carrier": rng.randrange(len(CARRIERS)), "specimens": chosen}


def build(params: Params) -> Draft:
    """The prompt, judged by the garbage oracle."""
    text = " ".join(SPECIMENS[i][1] for i in param_ints(params, "specimens"))
    return Draft(CARRIERS[param_int(params, "carrier")].format(x=text), OracleSpec("garbage"))


def describe(params: Params) -> str:
    """The specimens by name and the prompt, e.g. ``unicode: Korean in 'What does this say? …'``."""
    labels = " + ".join(SPECIMENS[i][0] for i in param_ints(params, "specimens"))
    return f"unicode: {labels} in {shorten(build(params).prompt)}"


# Simpler: carrier, then fewer specimens, then earlier ones.
rank, shrinker = pick_and_subset("carrier", "specimens")


FAMILY = Family(
    name="unicode",
    category=Category.EDGE.value,
    gate="F-EDGE-001",
    sample=sample,
    build=build,
    describe=describe,
    rank=rank,
    shrinker=shrinker,
)
