"""`apr-qa init`: what it writes, and its errors (one line, a documented exit code)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from apr_qa import api
from apr_qa.cli import cli
from apr_qa.errors import ExitCode
from apr_qa.fixtures import fixture_path
from apr_qa.plan import build_plan


def _init(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["init", *args])
    return result.exit_code, result.stdout, result.stderr


def test_init_writes_a_playbook_that_validates_and_plans(tmp_path: Path) -> None:
    out = tmp_path / "ci.playbook.yaml"
    code, stdout, _ = _init(str(fixture_path("tiny-qwen2")), "--template", "ci", "-o", str(out))
    assert code == 0, stdout
    plan = build_plan(api.load([out]).playbooks)
    assert f"wrote {out}: template ci, tiny-qwen2 (qwen2, tiny, chat prompts)" in stdout
    assert f"{len(plan.cells)} cells, {plan.test_count} tests" in stdout
    assert yaml.safe_load(out.read_text())["name"] == "tiny-qwen2-ci"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    out.write_text("mine")
    code, _, stderr = _init(str(fixture_path("tiny-llama")), "-t", "quick", "-o", str(out))
    assert code == ExitCode.USAGE
    assert stderr.strip() == f"apr-qa: error: {out}: exists; use --force to overwrite it"
    assert out.read_text() == "mine"
    code, _, _ = _init(str(fixture_path("tiny-llama")), "-t", "quick", "-o", str(out), "--force")
    assert code == 0 and out.read_text() != "mine"


def test_init_on_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    code, stdout, stderr = _init(str(tmp_path), "-o", str(tmp_path / "p.yaml"))
    assert code == ExitCode.USAGE
    assert stderr.splitlines() == [
        f"apr-qa: error: {tmp_path}: not a model checkpoint (no config.json)"
    ]
    assert not (tmp_path / "p.yaml").exists() and not stdout


def test_init_on_an_unknown_repo_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    code, _, stderr = _init("nobody/no-such-model", "-o", str(tmp_path / "p.yaml"))
    assert code == ExitCode.ENVIRONMENT
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "apr-qa: error: model nobody/no-such-model@main: not available (offline (HF_HUB_OFFLINE)"
    )


def test_init_full_without_golden_leaves_the_section_out(tmp_path: Path) -> None:
    out = tmp_path / "full.playbook.yaml"
    code, stdout, _ = _init(
        str(fixture_path("tiny-qa")), "-t", "full", "-o", str(out), "--no-golden"
    )
    assert code == 0, stdout
    text = out.read_text()
    assert "golden" not in yaml.safe_load(text)
    assert "record them with `apr-qa golden`" in text
    assert "recorded golden" not in stdout


def test_init_full_on_a_checkpoint_without_weights_says_how_to_finish(tmp_path: Path) -> None:
    """Golden outputs need the weights: the playbook is written without them, and the
    error says so in one line (exit 2: the input cannot be used for that)."""
    model = tmp_path / "config-only"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((fixture_path("tiny-llama") / name).read_bytes())
    out = tmp_path / "p.yaml"
    code, _, stderr = _init(str(model), "-t", "full", "-o", str(out))
    assert code == ExitCode.USAGE
    (line,) = stderr.splitlines()
    assert "written without golden outputs" in line and "--no-golden" in line
    assert "golden" not in yaml.safe_load(out.read_text())
    assert api.load([out]).playbooks
