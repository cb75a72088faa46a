"""`apr-qa report`: re-scoring from evidence files, shard merge, bad input, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from fixture_runs import clean_run, mutant_run

from apr_qa.cli import cli
from apr_qa.evidence import EvidenceWriter, Record


def _write(path: Path, records: list[Record]) -> Path:
    with EvidenceWriter(path, fsync=False) as w:
        w.write_all(records)
    return path


def _report(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_clean_run_exits_zero_and_writes_every_report(tmp_path: Path) -> None:
    ev = _write(tmp_path / "e.jsonl", clean_run())
    code, out, _ = _report(str(ev), "--output", str(tmp_path / "out"))
    assert code == 0, out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        ".apr-qa.lock",  # the directory's owner lock: a run cannot write there meanwhile
        "comment.md",
        "junit.xml",
        "report.html",
        "summary.json",
        "summary.md",
    ]
    assert "org/clean: MQS 1000/1000  grade A+  Certified" in out


def test_gateway_failure_exits_one_and_fail_below(tmp_path: Path) -> None:
    ev = _write(tmp_path / "e.jsonl", mutant_run())
    assert _report(str(ev), "-o", str(tmp_path / "o"))[0] == 1
    assert _report(str(ev), "-o", str(tmp_path / "o"), "--fail-below", "F")[0] == 1
    clean = _write(tmp_path / "c.jsonl", clean_run())
    assert _report(str(clean), "-o", str(tmp_path / "o"), "--fail-below", "a+")[0] == 0


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    ev = _write(tmp_path / "e.jsonl", clean_run())
    code, _, err = _report(str(ev), "-o", str(tmp_path / "o"), "--fail-below", "Z")
    assert code == 2 and "unknown grade 'Z'" in err
    code, _, err = _report(str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o"))
    assert code == 2 and "missing.jsonl: evidence file not found" in err
    assert _report("-o", str(tmp_path / "o"))[0] == 2


def test_shards_merge_into_the_unsharded_report(tmp_path: Path) -> None:
    records = clean_run() + mutant_run()
    whole = _write(tmp_path / "whole.jsonl", records)
    a = _write(tmp_path / "a.jsonl", records[::2])
    b = _write(tmp_path / "b.jsonl", records[1::2])
    _report(str(whole), "-o", str(tmp_path / "w"))
    _report(str(b), str(a), "-o", str(tmp_path / "m"))
    for name in ("summary.json", "junit.xml", "summary.md", "report.html"):
        assert (tmp_path / "w" / name).read_bytes() == (tmp_path / "m" / name).read_bytes(), name


def test_bad_input_is_reported_and_nothing_else_lost(tmp_path: Path) -> None:
    good = clean_run()
    path = _write(tmp_path / "e.jsonl", good)
    newer = good[0].to_json() | {"schema_version": 99, "record_id": "future"}
    unknown = good[1].to_json() | {"gate": "Q-NEW-001", "record_id": "unknown-gate"}
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(newer) + "\n")
        fh.write(json.dumps(unknown) + "\n")
        fh.write(json.dumps(good[2].to_json() | {"record_id": "cut"})[:40])  # killed mid-write
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    code, out, err = _report(str(path), str(empty), "-o", str(tmp_path / "o"))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text("utf-8"))
    warnings = "\n".join(summary["warnings"])
    assert "truncated last line, skipped" in warnings
    assert "schema_version 99 is newer" in warnings
    assert 'unknown gate id "Q-NEW-001" in 1 record(s)' in warnings
    assert "empty.jsonl: no evidence records" in warnings
    (model,) = summary["models"]
    assert model["counts"]["total"] == len(good) + 1  # every good record plus the unknown one
    assert (model["mqs"], model["status"], code) == (1000, "Certified", 0)
    assert "apr-qa: warning: " in err and "truncated last line" in err and "Q-NEW-001" in err
    assert "truncated last line" not in out  # warnings go to stderr, the verdict to stdout


def test_only_an_empty_file_is_pending_and_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    code, out, _ = _report(str(empty), "-o", str(tmp_path / "o"))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text("utf-8"))
    assert (code, summary["status"], summary["models"]) == (1, "Pending", [])
    assert "No evidence records" in out
