"""The command line as users drive it: exit codes, one line per problem, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, UPSTREAM

from apr_qa.facts import FACTS_KIND


def apr_qa(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apr_qa.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_version_and_help() -> None:
    result = apr_qa("--version")
    assert result.returncode == 0 and "apr-qa" in result.stdout
    for command in ("validate", "plan", "lock", "convert"):
        result = apr_qa(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def test_validate_ok_and_warnings_once_per_key() -> None:
    files = sorted(str(p) for p in (UPSTREAM / "playbooks/models").glob("*-mvp.playbook.yaml"))[:5]
    result = apr_qa("validate", *files)
    assert result.returncode == 0, result.stderr
    assert "5 playbooks valid" in result.stderr
    warned = [line for line in result.stderr.splitlines() if "contract_tests" in line]
    assert warned == ["apr-qa: warning: accepted, not supported: contract_tests (in 5 files)"]


def test_validate_bad_files_exit_2_one_line_each(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {id: m}\ntest_matrx: {}\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = apr_qa("-q", "validate", str(bad), str(empty))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:2:1: unknown key 'test_matrx' (did you mean 'test_matrix'?)",
        f"{empty}:1:1: empty file: a playbook needs at least a 'model'",
    ]
    assert "Traceback" not in result.stderr


def test_validate_missing_file_is_exit_2() -> None:
    result = apr_qa("validate", "/nonexistent/playbook.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_plan_reports_1800_tests_and_json(tmp_path: Path) -> None:
    book = tmp_path / "full.yaml"
    book.write_text(
        "model: {hf_repo: org/m, formats: [gguf, safetensors, apr], quantizations: [q4_k_m]}\n"
        "test_matrix: {modalities: [run, chat, serve], backends: [cpu, gpu], scenario_count: 100}\n"
    )
    result = apr_qa("plan", str(book))
    assert result.returncode == 0, result.stderr
    assert "18 cells, 1,800 tests" in result.stdout
    data = json.loads(apr_qa("plan", "--json", str(book)).stdout)
    assert data["totals"]["tests"] == 1800
    shards = [
        json.loads(apr_qa("-q", "plan", "--json", "--shard", f"{k}/3", str(book)).stdout)
        for k in (1, 2, 3)
    ]
    assert sum(s["totals"]["tests"] for s in shards) == 1800
    assert sorted(c["id"] for s in shards for c in s["cells"]) == sorted(
        c["id"] for c in data["cells"]
    )


def test_plan_on_upstream_untiered_playbook() -> None:
    result = apr_qa(
        "-q", "plan", str(UPSTREAM / "playbooks/models/qwen2.5-coder-1.5b.playbook.yaml")
    )
    assert result.returncode == 0, result.stderr
    assert "30 cells, 3,000 tests" in result.stdout


@pytest.mark.parametrize("shard", ["3/2", "x", "0/1"])
def test_plan_bad_shard(shard: str) -> None:
    result = apr_qa("plan", "--shard", shard, str(REPO / "examples/seed-readme.playbook.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--shard" in result.stderr


def test_lock_then_validate_locked(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text("name: b\nmodel: {hf_repo: org/m}\ntest_matrix: {seed: 1}\n")
    lock = tmp_path / "playbook.lock.yaml"
    assert apr_qa("lock", "-o", str(lock), str(book)).returncode == 0
    assert apr_qa("validate", "--locked", str(lock), str(book)).returncode == 0
    book.write_text("name: b\nmodel: {hf_repo: org/other}\ntest_matrix: {seed: 1}\n")
    result = apr_qa("validate", "--locked", str(lock), str(book))
    assert result.returncode == 2
    assert "locked fields changed: model.hf_repo" in result.stderr


def test_validate_locked_against_upstream_lock() -> None:
    book = UPSTREAM / "playbooks/models/falcon-40b-mvp.playbook.yaml"
    lock = UPSTREAM / "playbooks/playbook.lock.yaml"
    result = apr_qa("-q", "validate", "--locked", str(lock), str(book))
    assert result.returncode == 0, result.stderr


def test_run_with_a_model_that_does_not_exist_is_exit_3(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text("model: {path: ./no-such-model}\ntest_matrix: {formats: [gguf]}\n")
    result = apr_qa("run", "-o", str(tmp_path / "out"), str(book))
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"apr-qa: error: {tmp_path / 'no-such-model'}: model not found (no such file or directory)"
    ]


def test_run_with_a_bad_playbook_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    book = tmp_path / "b.yaml"
    book.write_text("model: {path: .}\nscenarios:\n  - {name: s, prompt: hi, oracle: arithmetc}\n")
    result = apr_qa("run", "-o", str(tmp_path / "out"), str(book))
    assert result.returncode == 2
    assert "did you mean 'arithmetic'" in result.stderr
    assert not (tmp_path / "out").exists()


def _six_cells(tmp_path: Path, model: str = "") -> Path:
    """A CPU-only playbook of 6 cells: safetensors + 2 GGUF quantizations, run and chat."""
    from apr_qa.fixtures import fixture_path

    book = tmp_path / "six.yaml"
    book.write_text(
        f"name: six\nmodel: {{id: apr-qa/six, path: {model or fixture_path('tiny-llama')}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [safetensors, gguf],"
        " quantizations: [q8_0, q4_0], max_tokens: 8}\n"
        "scenarios:\n  - {name: add, prompt: 'What is 7 + 8?', oracle: arithmetic, expected: 15}\n"
    )
    return book


@pytest.mark.parametrize(
    ("option", "where"),
    [(("--backend", "gpu"), "the selected backends"), (("--shard", "7/7"), "shard 7/7")],
)
def test_run_with_nothing_to_run_exits_0_with_one_line(
    tmp_path: Path, option: tuple[str, str], where: str
) -> None:
    # A fixed CI shard matrix (or a GPU job over CPU-only playbooks) must not fail for
    # having drawn no cell; it says so in one line and writes no report.
    book = _six_cells(tmp_path)
    planned = apr_qa("plan", "--json", str(book))
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["totals"]["cells"] == 6
    out = tmp_path / "out"
    result = apr_qa("run", "-o", str(out), *option, str(book))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"apr-qa: nothing to run in {where}; no report written"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (out / "summary.json").exists()


@pytest.mark.slow
def test_model_path_labels_results_with_the_model_tested(tmp_path: Path) -> None:
    from apr_qa.fixtures import fixture_path

    gguf = fixture_path("tiny-llama") / "tiny-llama-q8_0.gguf"
    book = tmp_path / "hub.yaml"
    book.write_text(
        "name: coder\nmodel: {hf_repo: Qwen/Qwen2.5-Coder-1.5B}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [gguf],"
        " quantizations: [q8_0], max_tokens: 8}\n"
        "scenarios:\n  - {name: add, prompt: 'What is 7 + 8?', oracle: arithmetic, expected: 15}\n"
    )
    out = tmp_path / "out"
    result = apr_qa("run", "-o", str(out), "--model-path", str(gguf), str(book))
    assert "Traceback" not in result.stderr, result.stderr
    label = "tiny-llama-q8_0 (standing in for Qwen/Qwen2.5-Coder-1.5B)"
    assert result.stdout.splitlines()[0].startswith(f"{label}: MQS"), result.stdout
    (model,) = json.loads((out / "summary.json").read_text())["models"]
    assert model["model"] == "tiny-llama-q8_0"
    assert model["stands_in_for"] == ["Qwen/Qwen2.5-Coder-1.5B"]
    # Markdown escapes the underscore of the file stem.
    shown = "tiny-llama-q8\\_0 (standing in for Qwen/Qwen2.5-Coder-1.5B)"
    assert f"### {shown}: MQS" in (out / "summary.md").read_text()
    assert label in (out / "report.html").read_text()
    lines = [json.loads(line) for line in (out / "evidence.jsonl").read_text().splitlines()]
    records = [r for r in lines if r.get("kind") != FACTS_KIND]
    assert len(records) < len(lines)  # the model's facts are labelled the same way
    assert {r["model"] for r in lines} == {"tiny-llama-q8_0"}
    assert {r["stands_in_for"] for r in records} == {"Qwen/Qwen2.5-Coder-1.5B"}
    # Re-rendered from evidence alone, the note survives.
    again = apr_qa("report", "-o", str(tmp_path / "again"), str(out / "evidence.jsonl"))
    assert label in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
def test_a_playbook_run_on_its_own_model_stands_in_for_nothing(tmp_path: Path) -> None:
    book = _six_cells(tmp_path)
    out = tmp_path / "out"
    result = apr_qa("run", "-o", str(out), "--shard", "1/6", str(book))
    assert "Traceback" not in result.stderr, result.stderr
    assert "standing in for" not in result.stdout + (out / "summary.md").read_text()
    (model,) = json.loads((out / "summary.json").read_text())["models"]
    assert model["model"] == "apr-qa/six" and model["stands_in_for"] == []
