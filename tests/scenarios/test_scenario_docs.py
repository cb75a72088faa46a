"""docs/scenarios.md agrees with the code: families, categories, gates, phrasings."""

from __future__ import annotations

import re
from pathlib import Path

from apr_qa.plan import GENERATED_FAMILIES
from apr_qa.scenarios import FAMILIES
from apr_qa.scenarios.arithmetic import PHRASINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def _rows(header: str) -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index(header) :].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_family_table_matches_the_families() -> None:
    rows = _rows("| family | prompts |")
    assert [r[0] for r in rows] == list(GENERATED_FAMILIES)
    for name, _prompts, _oracle, category, gate, shrinks in rows:
        family = FAMILIES[name]
        assert category == family.category
        assert gate == (family.gate or "cell's F-A*")
        assert (shrinks == "nothing") is (family.shrinker is None)


def test_phrasing_table_lists_every_phrasing_in_order() -> None:
    rows = _rows("| # | example |")
    assert [int(r[0]) for r in rows] == list(range(len(PHRASINGS)))
    for (_, example), phrasing in zip(rows, PHRASINGS, strict=True):
        shown = example.split("`")[1].replace("\\n", "\n")
        pattern = re.escape(phrasing)
        for field in ("a", "b"):
            pattern = pattern.replace(re.escape("{" + field + "}"), r"\d+")
        pattern = pattern.replace(re.escape("{op}"), r"[+*-]")
        pattern = pattern.replace(re.escape("{word}"), "(plus|minus|times)")
        pattern = pattern.replace(
            re.escape("{named}"),
            r"(the sum of \d+ and \d+|\d+ minus \d+|the product of \d+ and \d+)",
        )
        assert re.fullmatch(pattern, shown), (shown, phrasing)
