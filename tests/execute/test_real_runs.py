"""The engine end to end on the real runtimes and the committed tiny models.

Clean fixtures must hold every gateway and corroborate every scenario, in both
formats and every committed GGUF; and the reports of a real clean run and a real
mutant run must agree with their evidence. Every mutant of the table against the
gates it declares is tests/models/test_mutant_walk.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.fixtures import fixture_path, load_prompts
from apr_qa.playbook import load_playbook
from apr_qa.report import render_reports
from apr_qa.testing.mutants import build_mutant

pytestmark = pytest.mark.slow

GATEWAY_PREFIXES = ("G0-", "G1-", "G2-", "G3-", "G4-")


def _scenarios(fixture: str, per_kind: int = 2) -> str:
    """YAML scenarios from the fixture's own prompts.json: a few of each kind and modality."""
    lines: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for p in load_prompts(fixture):
        kind = (p.id.split("-")[0], p.modality)
        if seen.get(kind, 0) >= per_kind:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        oracle = {"arithmetic": "arithmetic", "contains": "contains", "code_syntax": "code_syntax"}[
            p.oracle
        ]
        spec: dict[str, object] = {"name": p.id, "oracle": oracle}
        if p.oracle == "arithmetic":
            spec["expected"] = int(p.expected)
        elif p.oracle == "contains":
            spec["value"] = p.expected
        else:
            spec["language"] = "python"
        if p.modality == "run":
            spec.update(prompt=p.prompt, modalities=["run"])
        else:
            spec["messages"] = [{"role": m.role, "content": m.content} for m in p.messages or ()]
        lines.append("  - " + json.dumps(spec))
    return "\n".join(lines) + "\n"


def _playbook(
    tmp: Path,
    name: str,
    model: Path,
    fmt: str,
    quants: list[str],
    scenarios: str,
    modalities: str = "[run, chat]",
) -> Path:
    path = tmp / f"{name}.yaml"
    gguf = f", quantizations: [{', '.join(quants)}]" if quants else ""
    path.write_text(
        f"name: {name}\nmodel: {{id: apr-qa/{name}, path: {model}}}\n"
        f"test_matrix: {{modalities: {modalities}, backends: [cpu], formats: [{fmt}]{gguf},"
        " max_tokens: 32, timeout_ms: 60000}\n"
        "failure_policy: collect-all\n"
        f"scenarios:\n{scenarios}"
    )
    return path


def _run(tmp: Path, *books: Path, workers: int = 2) -> list[Record]:
    out = tmp / "out"
    execute([load_playbook(b) for b in books], RunOptions(output_dir=out, workers=workers))
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    return read.records


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2"])
def clean_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Record]]:
    fixture = request.param
    tmp = tmp_path_factory.mktemp(fixture)
    root = fixture_path(fixture)
    quants = sorted(p.stem.removeprefix(f"{fixture}-") for p in root.glob("*.gguf"))
    scenarios = _scenarios(fixture)
    books = [
        _playbook(tmp, f"{fixture}-st", root, "safetensors", [], scenarios),
        _playbook(tmp, f"{fixture}-gguf", root, "gguf", quants, scenarios),
    ]
    return fixture, _run(tmp, *books)


def test_clean_fixture_holds_every_gateway(clean_run: tuple[str, list[Record]]) -> None:
    fixture, records = clean_run
    gateways = [r for r in records if r.gate.startswith(GATEWAY_PREFIXES)]
    not_passed = [
        (r.gate, r.cell, r.outcome, r.reason)
        for r in gateways
        if r.outcome is not Outcome.CORROBORATED
        and not (r.gate == "G0-INTEGRITY-005" and r.format == "safetensors")
    ]
    assert not_passed == []
    quants = {r.quantization for r in records if r.format == "gguf" and r.gate == "G1-LOAD-001"}
    expected = {p.stem.removeprefix(f"{fixture}-") for p in fixture_path(fixture).glob("*.gguf")}
    assert quants == expected
    for gate in ("G1-LOAD-001", "G2-INFER-001", "G3-CRASH-001", "G3-HANG-001"):
        assert len([r for r in gateways if r.gate == gate]) == 2 * (1 + len(expected)), gate


def test_clean_fixture_corroborates_every_scenario(clean_run: tuple[str, list[Record]]) -> None:
    _, records = clean_run
    scenario_records = [r for r in records if r.gate in ("F-A1-001", "F-A2-001")]
    assert len(scenario_records) >= 8 * 2
    wrong = [
        (r.cell, r.scenario.name if r.scenario else "", r.output, r.reason)
        for r in scenario_records
        if r.outcome is not Outcome.CORROBORATED
    ]
    assert wrong == []


def test_pad_flood_mutant_is_garbage_for_g4(tmp_path: Path) -> None:
    artifact = build_mutant("gguf-pad-flood", fixture_path("tiny-llama"), tmp_path / "mutants")
    book = _playbook(
        tmp_path,
        "pad",
        artifact,
        "gguf",
        [],
        _scenarios("tiny-llama", per_kind=1),
        modalities="[run]",
    )
    records = _run(tmp_path, book, workers=1)
    (g4,) = [r for r in records if r.gate == "G4-GARBAGE-001"]
    assert g4.outcome is Outcome.FALSIFIED, g4.reason


def test_reports_of_a_real_clean_run_and_a_real_mutant_run(tmp_path: Path) -> None:
    fixture = "tiny-llama"
    root = fixture_path(fixture)
    scenarios = _scenarios(fixture, per_kind=1)
    clean = _playbook(tmp_path, "clean", root, "gguf", ["q8_0"], scenarios)
    nan = build_mutant("nan-weight", root, tmp_path / "mutants")
    broken = _playbook(tmp_path, "nan", nan, "safetensors", [], scenarios)
    records = _run(tmp_path, clean, broken)
    result = render_reports(records, tmp_path / "reports")
    summary = json.loads(result.paths["summary"].read_text())
    models = {m["model"]: m for m in summary["models"]}
    assert models["apr-qa/nan"]["mqs"] == 0 and models["apr-qa/nan"]["status"] == "Blocked"
    verdicts = {g["gateway"]: g["verdict"] for g in models["apr-qa/clean"]["gateways"]}
    assert verdicts == dict.fromkeys(("G0", "G1", "G2", "G3", "G4"), "passed")
    nan_g0 = next(g for g in models["apr-qa/nan"]["gateways"] if g["gateway"] == "G0")
    assert nan_g0["verdict"] == "failed"
    assert result.exit_code == 1  # the mutant is blocked
    root_xml = ET.parse(result.paths["junit"]).getroot()
    assert (
        int(root_xml.get("tests", "0"))
        == len(records)
        == sum(m["counts"]["total"] for m in summary["models"])
    )
    failures = sum(1 for case in root_xml.iter("testcase") if case.find("failure") is not None)
    assert failures == sum(m["counts"]["falsified"] for m in summary["models"])
    html = result.paths["html"].read_text()
    assert "G0-INTEGRITY-002" in html and "apr-qa/clean" in html
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "Debian chromium not installed (apt-get install -y chromium); HTML checked as text only"
        )
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            result.paths["html"].resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln] == []
    for text in ("apr-qa/clean", "apr-qa/nan", "Blocked", "G0-INTEGRITY-002"):
        assert text in dom.stdout, text


def test_a_one_megabyte_prompt_is_skipped_not_a_hang(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    big = "word " * 200_000  # 1 MB, far beyond the model's context
    scenario = "  - " + json.dumps({"name": "huge", "prompt": big, "oracle": "garbage"}) + "\n"
    book = _playbook(tmp_path, "huge", root, "gguf", ["q8_0"], scenario, modalities="[run]")
    records = _run(tmp_path, book, workers=1)
    (huge,) = [
        r for r in records if r.scenario and r.scenario.name == "huge" and r.gate == "F-A1-001"
    ]
    assert huge.outcome is Outcome.SKIPPED
    assert "does not fit the context of 256" in huge.reason
    assert [r.outcome for r in records if r.gate == "G3-CRASH-001"] == [Outcome.CORROBORATED]


def _context(fixture: str) -> int:
    config = json.loads((fixture_path(fixture) / "config.json").read_text())
    return int(config["max_position_embeddings"])


def test_prompts_longer_than_the_context_are_skipped_never_falsified(tmp_path: Path) -> None:
    """Generated and explicit prompts past the context are skipped with the sizes; those
    that fit are judged as ever, in the same cells; a probe that cannot fit skips G2."""
    from tokenizers import Tokenizer

    fixture = "tiny-llama"
    root = fixture_path(fixture)
    context = _context(fixture)
    tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
    (fits,) = [p for p in load_prompts(fixture) if p.modality == "run"][:1]
    long = "word " * (2 * context)
    explicit = [
        {"name": "fits", "prompt": fits.prompt, "oracle": "contains", "value": fits.expected},
        {"name": "too-long", "prompt": long, "oracle": "garbage"},
    ]
    scenarios = "".join("  - " + json.dumps(s) + "\n" for s in explicit)
    book = tmp_path / "ctx.yaml"
    # Seed 5 draws a whitespace run of thousands of tokens among the first generated three.
    book.write_text(
        f"name: ctx\nmodel: {{id: apr-qa/ctx, path: {root}}}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors, gguf],"
        " quantizations: [q8_0], scenario_count: 5, seed: 5, max_tokens: 16}\n"
        f"failure_policy: collect-all\nscenarios:\n{scenarios}"
    )
    probe = tmp_path / "probe.yaml"
    probe.write_text(
        f"name: probe\nmodel: {{id: apr-qa/probe, path: {root}}}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [gguf],"
        " quantizations: [q8_0], max_tokens: 16}\n"
        f"gates: {{g2_probe: [{json.dumps(long)}]}}\n"
        f"failure_policy: collect-all\nscenarios:\n  - {json.dumps(explicit[0])}\n"
    )
    records = _run(tmp_path, book, probe)
    judged = [r for r in records if r.scenario is not None and r.scenario.prompt is not None]
    over, under = [], []
    for r in judged:
        assert r.scenario is not None and r.scenario.prompt is not None
        tokens = len(tokenizer.encode(r.scenario.prompt).ids)
        # Both runtimes add a BOS; stay clear of the edge where they may count one apart.
        if tokens > context + 8:
            over.append(r)
        elif tokens < context - 8:
            under.append(r)
    generated_over = [r for r in over if r.scenario and r.scenario.name != "too-long"]
    assert generated_over, "the seed no longer draws a prompt past the context"
    assert {r.scenario.name for r in over if r.scenario} >= {"too-long"}
    for r in over:
        assert r.outcome is Outcome.SKIPPED, (r.cell, r.reason)
        assert r.reason.startswith("not run: the prompt of "), r.reason
        assert r.reason.endswith(f" tokens does not fit the context of {context}"), r.reason
    # What fits is judged: the trained prompt is corroborated in every cell.
    assert under and not [r for r in under if "does not fit the context" in r.reason]
    fitting = [
        r for r in under if r.scenario and r.scenario.name == "fits" and r.gate == "F-A1-001"
    ]
    assert len(fitting) == 3 and {r.outcome for r in fitting} == {Outcome.CORROBORATED}
    g2 = {r.model: r for r in records if r.gate == "G2-INFER-001"}
    assert g2["apr-qa/probe"].outcome is Outcome.SKIPPED, g2["apr-qa/probe"].reason
    assert "does not fit the context" in g2["apr-qa/probe"].reason
    assert g2["apr-qa/ctx"].outcome is Outcome.CORROBORATED
    assert {r.outcome for r in records if r.gate.startswith("G3-")} == {Outcome.CORROBORATED}


def test_same_playbook_and_seed_give_identical_verdicts_on_real_runtimes(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    book = tmp_path / "twice.yaml"
    book.write_text(
        f"name: twice\nmodel: {{id: apr-qa/twice, path: {root}}}\n"
        "test_matrix: {modalities: [run, chat], backends: [cpu], formats: [safetensors, gguf],"
        " quantizations: [q4_0], scenario_count: 10, seed: 11, max_tokens: 16}\n"
        "failure_policy: collect-all\n"
    )

    def verdicts(out: str) -> list[tuple[str, str, str, str, str]]:
        execute([load_playbook(book)], RunOptions(output_dir=tmp_path / out, workers=2))
        records = read_evidence([tmp_path / out / "evidence.jsonl"]).records
        return sorted(
            (r.gate, r.cell, r.scenario.name if r.scenario else "-", str(r.outcome), r.output or "")
            for r in records
        )

    first, second = verdicts("a"), verdicts("b")
    assert first == second
    assert len(first) > 40
    assert {v[3] for v in first} >= {"corroborated", "falsified"}  # generated scenarios break it


def test_a_missing_gguf_quantization_is_converted_and_recorded(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    assert not list(root.glob("*q5_0*.gguf"))  # not committed: the converter must produce it
    book = _playbook(
        tmp_path,
        "conv",
        root,
        "gguf",
        ["q5_0"],
        _scenarios("tiny-llama", per_kind=1),
        modalities="[run]",
    )
    records = _run(tmp_path, book, workers=1)
    (converted,) = [r for r in records if r.gate == "G0-FORMAT-GGUF-001"]
    assert converted.outcome is Outcome.CORROBORATED and converted.quantization == "q5_0"
    assert [r.outcome for r in records if r.gate == "G1-LOAD-001"] == [Outcome.CORROBORATED]
