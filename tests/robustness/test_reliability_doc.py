"""docs/reliability.md stays true to the code: every test it names exists, every test
of the signal and output-directory suites is named there, every constant it cites
exists, and the schema bounds it quotes are the schema's."""

from __future__ import annotations

import ast
import importlib
import json
import re
from importlib import resources
from pathlib import Path

import pytest
from tests.conftest import REPO

DOC = REPO / "docs" / "reliability.md"
SUITES = ("tests/robustness/test_signals.py", "tests/robustness/test_output_dir.py")


def _named_tests() -> set[tuple[str, str]]:
    return set(re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", DOC.read_text(encoding="utf-8")))


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_test_the_doc_names_exists() -> None:
    named = _named_tests()
    assert len(named) > 20
    missing = [
        f"{file}::{name}"
        for file, name in sorted(named)
        if not (REPO / file).is_file() or name not in _tests_in(REPO / file)
    ]
    assert missing == []


@pytest.mark.parametrize("suite", SUITES)
def test_every_test_of_the_reliability_suites_is_in_the_doc(suite: str) -> None:
    named = {name for file, name in _named_tests() if file == suite}
    tests = _tests_in(REPO / suite)
    assert tests, suite
    assert sorted(tests - named) == []


def test_every_constant_the_doc_cites_exists() -> None:
    dotted = set(re.findall(r"`(apr_qa(?:\.\w+)+)`", DOC.read_text(encoding="utf-8")))
    assert len(dotted) > 10
    for name in sorted(dotted):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                assert hasattr(target, attr), name
                target = getattr(target, attr)
            break


def _schema_maximum(*path: str) -> int:
    text = resources.files("apr_qa.schemas").joinpath("playbook.schema.json").read_text("utf-8")
    node = json.loads(text)
    for key in path:
        node = node[key]
    value = node.get("maximum", node.get("maxLength", node.get("maxItems")))
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize(
    ("row", "path"),
    [
        (
            "`test_matrix.scenario_count`",
            ("properties", "test_matrix", "properties", "scenario_count"),
        ),
        (
            "`timeout_ms` (matrix and scenario)",
            ("properties", "test_matrix", "properties", "timeout_ms"),
        ),
        (
            "`max_tokens`, `profile_ci.tokens`",
            ("properties", "test_matrix", "properties", "max_tokens"),
        ),
        (
            "`max_tokens`, `profile_ci.tokens`",
            ("properties", "profile_ci", "properties", "tokens"),
        ),
        ("`seed`", ("properties", "test_matrix", "properties", "seed")),
        ("`name`", ("properties", "name")),
        (
            "`property_tests[].count`",
            ("properties", "property_tests", "items", "properties", "count"),
        ),
    ],
)
def test_the_schema_bounds_the_doc_quotes_are_the_schemas(row: str, path: tuple[str, ...]) -> None:
    (line,) = [
        x for x in DOC.read_text(encoding="utf-8").splitlines() if x.startswith(f"| {row} |")
    ]
    quoted = line.split("|")[2]
    assert f"{_schema_maximum(*path):,}" in quoted, (row, quoted)
