"""End to end: a real run of a committed tiny model, its summary certified into a
README, the registry row and the table row matching the summary.

tiny-qa is the fixture trained on another prompt form: nothing here depends on the
other fixtures' prompts. Its parameter count is checked against the safetensors
library's own tensor table, not against apr-qa's reader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors import safe_open

from apr_qa import api
from apr_qa.certify.registry import read_registry
from apr_qa.certify.table import END, START
from apr_qa.cli import cli
from apr_qa.fixtures import fixture_path

pytestmark = pytest.mark.slow

PLAYBOOK = """\
name: tiny-qa
model:
  id: apr-qa/tiny-qa
  path: {path}
  family: apr-tiny
test_matrix:
  modalities: [run]
  backends: [cpu]
  formats: [safetensors, gguf]
  quantizations: [q8_0]
  max_tokens: 16
  timeout_ms: 60000
scenarios:
  - name: product
    prompt: "Question: What is 6 times 7?\\nAnswer:"
    oracle: arithmetic
    expected: 42
failure_policy: collect-all
"""


def test_a_real_run_certifies_into_a_readme_matching_its_summary(tmp_path: Path) -> None:
    root = fixture_path("tiny-qa")
    with safe_open(str(root / "model.safetensors"), "np") as f:
        counted = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    book = tmp_path / "tiny-qa.yaml"
    book.write_text(PLAYBOOK.format(path=root), encoding="utf-8")
    result = api.run([book], api.RunConfig(output_dir=tmp_path / "out", warm_start=False))
    assert result.report is not None
    summary_path = result.report.paths["summary"]
    model = json.loads(summary_path.read_text())["models"][0]
    assert model["facts"] == {
        "family": "apr-tiny",
        "architecture": "llama",
        "parameters": counted,
        "size_category": "tiny",
        "artifact": "safetensors.f32",
    }
    # Re-rendered from the evidence alone, the facts are the same.
    again = api.report([tmp_path / "out" / "evidence.jsonl"], tmp_path / "again")
    assert again.report.summary["models"][0]["facts"] == model["facts"]

    readme = tmp_path / "README.md"
    readme.write_text(f"# Ours\n\n{START}\n{END}\n", encoding="utf-8")
    registry = tmp_path / "docs" / "certifications" / "models.csv"
    args = ["certify", str(summary_path), "--readme", str(readme), "--registry", str(registry)]
    out = CliRunner().invoke(cli, [*args, "--badges", str(tmp_path / "badges")])
    assert out.exit_code == 0, out.output

    (row,) = read_registry(registry).rows
    gateways = {g["gateway"].lower(): g["verdict"] for g in model["gateways"]}
    assert (row.model, row.status, int(row.mqs), row.grade) == (
        model["model"],
        model["status"],
        model["mqs"],
        model["grade"],
    )
    assert row.gateways == {
        k: {"passed": "pass", "failed": "fail"}.get(v, "not run") for k, v in gateways.items()
    }
    for category in model["categories"]:
        value = row.points[category["category"].lower()]
        if category["assessed"]:
            assert float(value) == pytest.approx(category["points"])
        else:
            assert value == "not assessed"
    assert (row.family, int(row.parameters), row.size_category) == ("apr-tiny", counted, "tiny")
    assert row.evidence == (tmp_path / "out" / "evidence.jsonl").as_posix()
    assert row.playbook == str(book)

    line = next(x for x in readme.read_text().splitlines() if x.startswith("| [tiny-qa]"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert counted < 10**6  # a fixture: the Size column is its thousands
    marks = [{"passed": "✓", "failed": "✗"}.get(gateways[g], "-") for g in ("g1", "g2", "g3", "g4")]
    assert cells == [
        "[tiny-qa](https://huggingface.co/apr-qa/tiny-qa)",
        "apr-tiny",
        f"{round(counted / 1000)}K",
        f"![{model['status'].lower()}](https://img.shields.io/badge/{model['status'].upper()}-"
        + {"Blocked": "red", "Provisional": "yellow", "Certified": "brightgreen"}[model["status"]]
        + ")",
        str(model["mqs"]),
        model["grade"],
        *marks,
    ]
    badge = json.loads((tmp_path / "badges" / "apr-qa__tiny-qa.json").read_text())
    assert badge["message"] == f"{model['status']} · MQS {model['mqs']} ({model['grade']})"

    # Certified again from the same evidence: nothing moves, and --check agrees.
    assert CliRunner().invoke(cli, [*args, "--check"]).exit_code == 0
