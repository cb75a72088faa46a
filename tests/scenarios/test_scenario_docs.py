"""docs/scenarios.md agrees with the code: families, categories, gates, and every catalogue.

The shares the tables give are checked against sampled draws in
test_scenario_distribution.py; here each table's rows are checked to be the
code's catalogue, in order, as the product renders it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from apr_qa.plan import GENERATED_FAMILIES
from apr_qa.scenarios import FAMILIES, determinism, injection, unicode, whitespace
from apr_qa.scenarios.arithmetic import DIGITS, MULTIPLIER_DIGITS, OPERATORS, PHRASINGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def rows(header: str) -> list[list[str]]:
    """The body rows of the doc's table whose header line starts with ``header``."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index(header) :].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def code(cell: str) -> str:
    """The text between a cell's backticks, with ``\\n`` read as a newline."""
    return cell.split("`")[1].replace("\\n", "\n")


def test_family_table_matches_the_families() -> None:
    table = rows("| family | prompts |")
    assert [r[0] for r in table] == list(GENERATED_FAMILIES)
    for name, _prompts, _oracle, category, gate, shrinks in table:
        family = FAMILIES[name]
        assert category == family.category
        assert gate == (family.gate or "cell's F-A*")
        assert (shrinks == "nothing") is (family.shrinker is None)


def test_phrasing_table_shows_what_each_phrasing_sends() -> None:
    table = rows("| # | phrasing | share |")
    assert [int(r[0]) for r in table] == list(range(len(PHRASINGS)))
    total = sum(p.weight for p in PHRASINGS)
    for row, phrasing in zip(table, PHRASINGS, strict=True):
        assert row[1] == phrasing.name
        assert Fraction(row[2]) == Fraction(phrasing.weight, total)
        shown = [code(cell) for cell in row[3:6]]
        assert shown == [phrasing.render(12, op, 5) for op in OPERATORS], row


def test_operand_table_gives_the_code_weights() -> None:
    table = rows("| digits | values | share |")
    assert [int(r[0]) for r in table] == [d for d, _ in DIGITS]
    for weights, column in ((DIGITS, 2), (MULTIPLIER_DIGITS, 3)):
        total = sum(w for _, w in weights)
        by_digits = dict(weights)
        for row in table:
            share = Fraction(row[column])
            assert share == Fraction(by_digits.get(int(row[0]), 0), total), row


def test_catalogue_tables_list_the_code_catalogues_in_order() -> None:
    assert [code(r[1]) for r in rows("| # | carrier |")] == list(unicode.CARRIERS)
    assert [r[1] for r in rows("| # | kind | prompt |")] == list(whitespace.KINDS)
    assert [code(r[1]) for r in rows("| # | question |")] == list(injection.QUESTIONS)
    assert [code(r[1]) for r in rows("| # | prompt |")] == list(determinism.PROMPTS)
    for header in ("| # | carrier |", "| # | kind |", "| # | question |", "| # | prompt |"):
        assert [int(r[0]) for r in rows(header)] == list(range(len(rows(header))))


def test_whitespace_lengths_in_the_doc_are_the_code_lengths() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    *head, last = (f"{n:,}" for n in whitespace.LENGTHS)
    assert f"each 1/{len(whitespace.LENGTHS)} of {', '.join(head)} or {last};" in text
