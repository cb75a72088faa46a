"""docs/architecture.md names real code: every dotted name resolves, and every
registered check is drawn at its stage."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from apr_qa.checks import Stage, registered

DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module("apr_qa." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            target = getattr(target, attr)
        return target
    raise AssertionError(f"docs/architecture.md names {dotted}, which does not exist")


def test_every_dotted_name_in_the_architecture_doc_exists() -> None:
    text = DOC.read_text()
    names = set(
        re.findall(
            r"\b((?:checks|execute|models|evidence|merge|score|report|api|playbook|plan)\.(?!jsonl|py\b|md\b|yaml\b)[A-Za-z_.]+[A-Za-z_])",
            text,
        )
    )
    assert len(names) > 10
    for name in sorted(names):
        _resolve(name)


def test_every_registered_check_is_drawn_at_its_stage() -> None:
    text = DOC.read_text()
    for stage in Stage:
        for check in registered(stage):
            module = type(check).__module__.removeprefix("apr_qa.")
            assert f"{module}.{type(check).__name__}" in text, (stage, check)
