"""The gate catalogue: exact IDs only, implemented or planned, and each implemented
gate backed by a test that falsifies it and one that corroborates it."""

from __future__ import annotations

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path

import pytest

from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.gates import Capability, all_gates, lookup, scenario_gate
from apr_qa.testing.mutants import MUTANTS, applies

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "gates.md"
SRC = REPO / "src" / "apr_qa"
WALK = "tests/models/test_mutant_walk.py::"
REF = re.compile(r"`([^`]+)`")


def test_lookup_knows_catalogue_entries_only() -> None:
    for gate in all_gates():
        assert lookup(gate.id) is gate
    # Each of these sits under a family prefix the original defined; none is an entry.
    for unknown in ("F-CONV-007", "F-ROSETTA-INF-999", "F-SEC-001", "F-STAB-001", "G1-LOAD"):
        assert lookup(unknown) is None, unknown
    assert lookup("f-a1-001") is None and lookup("") is None


def test_ids_are_unique_and_statuses_consistent() -> None:
    ids = [g.id for g in all_gates()]
    assert len(ids) == len(set(ids))
    for gate in all_gates():
        assert gate.is_implemented == (gate.planned is None)
        assert gate.planned is None or isinstance(gate.planned, Capability)
        assert not (gate.is_gateway and gate.planned), f"{gate.id}: a gateway is never planned"


def test_scenario_gates_are_implemented_in_every_modality() -> None:
    for backend in ("cpu", "gpu"):
        for modality in ("run", "chat", "serve"):
            gate = lookup(scenario_gate(modality, backend))
            assert gate is not None and gate.is_implemented


def _string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_no_product_code_names_a_planned_gate() -> None:
    """A planned gate that some module starts recording must be marked implemented."""
    planned = {g.id for g in all_gates() if not g.is_implemented}
    named: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        # The catalogue itself, and the mutant table that declares what gates will catch.
        if path.name == "gates.py" or path.name.startswith("mutants"):
            continue
        for gate_id in _string_constants(path) & planned:
            named.setdefault(gate_id, []).append(str(path.relative_to(REPO)))
    assert named == {}


# --- the table in docs/gates.md ------------------------------------------------------


def _doc_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and lookup(cells[0]) is not None:
            assert cells[0] not in rows, f"{cells[0]} listed twice"
            rows[cells[0]] = cells
    return rows


def _refs(cell: str) -> list[str]:
    return REF.findall(cell)


def test_doc_table_lists_the_catalogue() -> None:
    rows = _doc_rows()
    assert list(rows) == [g.id for g in all_gates()]
    for gate in all_gates():
        _, title, category, severity, status, falsified, corroborated = rows[gate.id]
        assert (title, category, severity) == (gate.title, gate.category, gate.severity)
        if gate.planned is None:
            assert status == "implemented", gate.id
            assert _refs(falsified) and _refs(corroborated), f"{gate.id} names no test"
        else:
            assert status == f"planned: {gate.planned}", gate.id
            assert (falsified, corroborated) == ("—", "—"), f"{gate.id} is planned"


@cache
def _test_functions(relpath: str) -> tuple[str, ...]:
    path = REPO / relpath
    if not path.is_file():
        return ()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return tuple(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    )


def _declared_by_a_mutant(gate_id: str) -> bool:
    return any(
        gate_id in m.gates and applies(m.name, fixture_path(f))
        for m in MUTANTS.values()
        for f in fixture_names()
    )


def _cases() -> list[tuple[str, str, str]]:
    return [
        (gate_id, column, ref)
        for gate_id, cells in _doc_rows().items()
        for column, cell in (("falsified", cells[5]), ("corroborated", cells[6]))
        for ref in _refs(cell)
    ]


@pytest.mark.parametrize(("gate_id", "column", "ref"), _cases())
def test_every_named_test_exists(gate_id: str, column: str, ref: str) -> None:
    """The test named for a gate is there (``*`` in its name matches any ending)."""
    relpath, _, pattern = ref.partition("::")
    assert relpath.startswith("tests/") and pattern.startswith("test"), ref
    found = fnmatch.filter(_test_functions(relpath), pattern)
    assert found, f"{gate_id} {column} by {ref}: no such test in {relpath}"
    if ref.startswith(WALK) and "gpu" not in pattern:
        # The walk only speaks for gates some applicable mutant declares.
        assert _declared_by_a_mutant(gate_id), f"no mutant declares {gate_id}"
