"""Every example in docs/oracles.md is executed: the docs cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apr_qa.oracles import create, with_expected

DOC = Path(__file__).resolve().parents[2] / "docs" / "oracles.md"
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)


def _examples() -> list[Any]:
    cases = []
    for block in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        spec = yaml.safe_load(block)
        for outcome in ("pass", "fail", "skip"):
            for output in spec.get(outcome, []):
                label = f"{spec['oracle']}-{outcome}-{output[:30]!r}"
                cases.append(pytest.param(spec, outcome, output, id=label))
    return cases


EXAMPLES = _examples()


def test_the_docs_hold_examples_for_every_outcome() -> None:
    outcomes = {p.values[1] for p in EXAMPLES}
    assert outcomes == {"pass", "fail", "skip"}
    assert len(EXAMPLES) > 100


@pytest.mark.parametrize(("spec", "outcome", "output"), EXAMPLES)
def test_doc_example(spec: dict[str, Any], outcome: str, output: str) -> None:
    # As the playbook loader does: a scenario's expected may be the oracle's answer option.
    options = with_expected(spec["oracle"], spec.get("options", {}), spec.get("expected"))
    oracle = create(spec["oracle"], options)
    verdict = oracle(output, prompt=spec.get("prompt"), expected=spec.get("expected"))
    seen = "skip" if verdict.skipped else "pass" if verdict.passed else "fail"
    assert seen == outcome, verdict.reason
