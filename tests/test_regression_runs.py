"""Regression against a baseline and ``apr-qa compare``, on real runs of the tiny models.

The clean tiny-llama checkpoint is the baseline; the noise-drift mutant (fluent
but wrong) stands in for a pull request that made the model worse under the
same model id. Its run with the clean run as ``--baseline`` must name the checks
that regressed and exit 1 even where its grade alone would pass; the clean
checkpoint against itself must find none; and ``apr-qa compare`` must give the
same answer for the mutant's shards as for its unsharded run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from apr_qa import api
from apr_qa.cli import cli
from apr_qa.compare import Comparison
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.fixtures import fixture_path
from apr_qa.plan import parse_shard
from apr_qa.testing.mutants import build_mutant
from regression_playbooks import fixture_scenarios

pytestmark = pytest.mark.slow

MODEL_ID = "apr-qa/tiny-llama-pr"


def _playbook(tmp: Path, name: str, model: Path) -> Path:
    """The same playbook (name, model id, scenarios) whatever the checkpoint: a pull
    request changes the weights, not the playbook, so check keys match across runs."""
    (tmp / f"playbook-{name}").mkdir()
    path = tmp / f"playbook-{name}" / "playbook.yaml"
    path.write_text(
        f"name: tiny-llama-pr\nmodel: {{id: {MODEL_ID}, path: {model}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [safetensors],"
        " max_tokens: 32, timeout_ms: 60000}\n"
        "failure_policy: collect-all\n"
        f"scenarios:\n{fixture_scenarios('tiny-llama')}"
    )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Output directories: clean, mutant, and the mutant's two shards under one folder."""
    tmp = tmp_path_factory.mktemp("regress")
    clean = _playbook(tmp, "clean", fixture_path("tiny-llama"))
    mutant_dir = build_mutant("noise-drift", fixture_path("tiny-llama"), tmp / "mutants")
    mutant = _playbook(tmp, "mutant", mutant_dir)
    out = {"clean": tmp / "clean", "mutant": tmp / "mutant", "shards": tmp / "shards"}
    api.run([clean], api.RunConfig(output_dir=out["clean"], workers=2))
    api.run([mutant], api.RunConfig(output_dir=out["mutant"], workers=2))
    for k in (1, 2):
        config = api.RunConfig(output_dir=out["shards"] / f"shard-{k}", shard=parse_shard(f"{k}/2"))
        api.run([mutant], config)
    out["mutant_book"] = mutant
    out["clean_book"] = clean
    return out


def _records(out: Path) -> list[Record]:
    return read_evidence([out / "evidence.jsonl"]).records


def test_mutant_regresses_against_the_clean_baseline_and_exits_1(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "pr"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(runs["mutant_book"]),
            "-o",
            str(out),
            "--baseline",
            str(runs["clean"]),
            "--fail-below",
            "F",
        ],
    )
    assert result.exit_code == 1, result.output
    records = _records(out)
    base = next(r for r in records if r.gate == "F-REGR-BASE-001")
    assert base.outcome is Outcome.FALSIFIED, base.reason
    # Every regressed check names a check that passed in the clean run and fails now.
    clean = {r.key: r for r in _records(runs["clean"])}
    now = {r.key: r for r in records}
    listed = base.expected["regressed"]
    assert listed and base.metrics["checks_regressed"] == len(listed)
    for entry in listed:
        assert clean[entry["key"]].outcome is Outcome.CORROBORATED
        assert now[entry["key"]].outcome is Outcome.FALSIFIED
        assert entry["output_before"] != entry["output_after"]
    # Without the baseline the same evidence passes --fail-below F: the exit 1 is the regression's.
    evidence = str(runs["mutant"] / "evidence.jsonl")
    plain = CliRunner().invoke(
        cli, ["report", evidence, "-o", str(tmp_path / "plain"), "--fail-below", "F"]
    )
    assert plain.exit_code == 0, plain.output
    # Every report shows the comparison.
    summary = json.loads((out / "summary.json").read_text())
    section = summary["models"][0]["baseline"]
    assert section["counts"]["regressed"] == len(listed)
    regr = next(c for c in summary["models"][0]["categories"] if c["category"] == "REGR")
    assert regr["assessed"] and regr["passed"] < regr["executed"]
    assert "Compared with baseline" in (out / "summary.md").read_text()
    assert "Compared with baseline" in (out / "report.html").read_text()
    assert listed[0]["gate"] in (out / "report.html").read_text()


def test_clean_run_against_itself_regresses_nothing_and_exits_0(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "again"
    config = api.RunConfig(output_dir=out, workers=2, baseline=runs["clean"], fail_below="F")
    result = api.run([runs["clean_book"]], config)
    assert result.exit_code == 0
    base = next(r for r in result.outcome.records if r.gate == "F-REGR-BASE-001")
    assert base.outcome is Outcome.CORROBORATED, base.reason
    assert base.metrics["checks_regressed"] == 0 and base.metrics["checks_still_passing"] > 0
    regr = next(c for c in result.report.run.models[0].categories if c.category == "REGR")  # type: ignore[union-attr]
    assert regr.assessed


def test_compare_lists_the_regressed_checks_and_exits_1(runs: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["compare", str(runs["clean"]), str(runs["mutant"]), "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert document["counts"]["regressed"] > 0
    assert {c["gate"] for c in document["regressed_checks"]} <= {"F-A1-001", "F-A2-001"}
    same = CliRunner().invoke(cli, ["compare", str(runs["mutant"]), str(runs["mutant"])])
    assert same.exit_code == 0, same.output
    assert "0 regressed" in same.output


def test_compare_gives_the_same_answer_for_merged_shards(runs: dict[str, Path]) -> None:
    whole = api.compare(runs["clean"], runs["mutant"]).comparison
    sharded = api.compare(runs["clean"], runs["shards"]).comparison
    assert len(list(runs["shards"].rglob("evidence.jsonl"))) == 2
    assert sharded.counts == whole.counts

    def moved(c: Comparison) -> list[tuple[str, str]]:
        return [(x.key, str(x.change)) for x in c.changes]

    assert moved(sharded) == moved(whole)
    assert [d.after.mqs for d in sharded.models if d.after] == [
        d.after.mqs for d in whole.models if d.after
    ]


def test_compare_markdown_is_a_pr_comment(runs: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        cli, ["compare", str(runs["clean"]), str(runs["mutant"]), "--markdown"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("### apr-qa compare: ❌")
    assert "#### Regressed" in result.output and "| QUAL |" in result.output
