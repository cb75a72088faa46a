"""F-TRACE-DIFF-001 on the real fixtures: each artifact's weights traced through the
checkpoint's transformers model, layer by layer, against the checkpoint's own trace.

Every clean GGUF of every fixture agrees; the conversion mutants disagree from the
layer their defect starts at: a q/k permutation bug from block 0 (attention is the
first thing it touches), corrupt q8_0 scales from the embedding (the token
embedding is quantized too), swapped decoder layers from block 0, noise on every
matrix from the embedding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from apr_qa import api
from apr_qa.checks import Artifact, Finding
from apr_qa.checks.trace_diff import (
    GATE,
    MIN_LAYER_COSINE,
    LayerCosine,
    TraceDiff,
    first_below,
    layer_cosines,
    min_cosine,
)
from apr_qa.evidence import Outcome, read_evidence
from apr_qa.execute.records import CellRef
from apr_qa.fixtures import fixture_names, fixture_path
from apr_qa.models.architectures import ATTN_Q, architecture
from apr_qa.playbook import load_playbook
from apr_qa.playbook.model import Playbook
from apr_qa.testing.mutants import applies, build_mutant

PROMPT = "The capital of France is"
GGUF_MUTANTS = (
    "gguf-qk-permutation-missing",  # llama: rows left in Hugging Face's order
    "gguf-qk-permutation-spurious",  # qwen2: rows permuted although its graph wants none
    "gguf-quant-scales-corrupt",
)
OTHER_DIFFERENTIAL = ("tensor_diff", "inference_compare", "tokenizer_parity")
# Where each defect first shows: (mutant, first layer below the floor).
FIRST_LAYER = {
    "gguf-qk-permutation-missing": "block 0",
    "gguf-qk-permutation-spurious": "block 0",
    "gguf-quant-scales-corrupt": "embedding",
}


def _stage(
    folder: Path,
    checkpoint: Path | None,
    ggufs: Sequence[Path],
    trace: Mapping[str, Any] | None,
) -> tuple[Playbook, list[Artifact]]:
    """A playbook with a ``trace_payload`` section and the artifacts the supervisor
    hands the model stage (a GGUF's quantization read from its header)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trace.yaml"
    lines = [
        "name: trace",
        "model: {id: apr-qa/trace}",
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors, gguf]}",
        f"scenarios:\n  - {{name: s, prompt: {json.dumps(PROMPT)}}}",
    ]
    if trace is not None:
        lines.append(f"trace_payload: {json.dumps(dict(trace))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    playbook = load_playbook(path)
    assert playbook.warnings == (), playbook.warnings
    artifacts = []
    if checkpoint is not None:
        ref = CellRef("apr-qa/trace", "safetensors", "-")
        artifacts.append(Artifact(playbook, ref, checkpoint, "local"))
    for gguf in ggufs:
        ref = CellRef("apr-qa/trace", "gguf", "auto")
        artifacts.append(Artifact(playbook, ref, gguf, "local"))
    return playbook, artifacts


def _one(findings: Any) -> Finding:
    (finding,) = list(findings)
    assert finding.gate == GATE
    return finding


def _problem_of(finding: Finding, name: str) -> str:
    problems = finding.details["problems"]
    assert isinstance(problems, list)
    (problem,) = [p for p in problems if f"({name})" in p.split(":")[0]]
    return str(problem)


# -- the arithmetic, no runtime --


def test_layer_cosines_judge_the_worst_token_and_name_the_first_layer() -> None:
    import numpy as np

    ref = np.ones((3, 4, 8), dtype=np.float32)
    got = ref.copy()
    got[1, 2] = -1.0  # one token of block 0 points the other way
    got[2, 0, :4] = 0.0
    cos = layer_cosines(ref, got)
    assert [c.layer for c in cos] == ["embedding", "block 0", "block 1 + final norm"]
    assert cos[0].min == pytest.approx(1.0) and cos[1].min == pytest.approx(-1.0)
    assert cos[1].mean == pytest.approx(0.5)  # three tokens agree, one is opposite
    assert cos[2].min == pytest.approx(np.sqrt(0.5))
    first = first_below(cos, 0.99)
    assert first is not None and first.layer == "block 0"
    nan = [LayerCosine("embedding", 1.0, 1.0), LayerCosine("block 0", float("nan"), float("nan"))]
    assert first_below(nan, -1.0) == nan[1]  # a NaN is below any floor


def test_floors_come_from_the_playbook_then_the_table() -> None:
    assert min_cosine("Q8_0", None) == MIN_LAYER_COSINE["q8_0"]
    assert min_cosine("q4_0", 0.5) == 0.5
    assert min_cosine("q4_0", {"q4_0": 0.7, "f16": 0.9}) == 0.7
    assert min_cosine("q8_0", {"q4_0": 0.7}) == MIN_LAYER_COSINE["q8_0"]
    assert MIN_LAYER_COSINE["f32"] > MIN_LAYER_COSINE["q8_0"] > MIN_LAYER_COSINE["q4_0"]


def test_opt_in_and_its_gate_list(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    gguf = root / "tiny-llama-f32.gguf"
    for name, trace in (
        ("none", None),
        ("off", {"enabled": False}),
        ("others", {"gates": ["F-TRACE-PAYLOAD-001"]}),
    ):
        assert list(TraceDiff().check(*_stage(tmp_path / name, root, [gguf], trace))) == []


def test_nothing_to_compare_is_skipped_never_passed(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    alone = _one(TraceDiff().check(*_stage(tmp_path / "a", root, [], {"enabled": True})))
    assert alone.outcome is Outcome.SKIPPED and "no GGUF" in alone.reason
    gguf = root / "tiny-llama-f32.gguf"
    no_ref = _one(TraceDiff().check(*_stage(tmp_path / "b", None, [gguf], {"enabled": True})))
    assert no_ref.outcome is Outcome.SKIPPED and "no safetensors reference" in no_ref.reason


# -- real transformers + gguf --


@pytest.mark.slow
@pytest.mark.parametrize("fixture", fixture_names())
def test_every_clean_gguf_agrees_layer_by_layer(tmp_path: Path, fixture: str) -> None:
    root = fixture_path(fixture)
    ggufs = sorted(root.glob("*.gguf"))
    assert len(ggufs) >= 4  # f32, f16, q8_0, q4_0 (and q4_k_m)
    finding = _one(TraceDiff().check(*_stage(tmp_path, root, ggufs, {"prompt": PROMPT})))
    assert finding.outcome is Outcome.CORROBORATED, finding.reason
    layers = finding.details["layers"]
    assert isinstance(layers, dict) and len(layers) == len(ggufs)
    config = json.loads((root / "config.json").read_text())
    for rows in layers.values():
        assert len(rows) == config["num_hidden_layers"] + 1
    assert finding.details["not_compared"] == []
    assert 0.9 < finding.metrics["min_layer_cosine"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("fixture", fixture_names())
def test_conversion_mutants_diverge_from_the_layer_of_their_defect(
    tmp_path: Path, fixture: str
) -> None:
    root = fixture_path(fixture)
    built = {
        name: build_mutant(name, root, tmp_path / name)
        for name in GGUF_MUTANTS
        if applies(name, root)
    }
    # One q/k permutation bug for its rotary layout (none where q/k/v are fused, as in
    # phi3), the scales.
    model_type = json.loads((root / "config.json").read_text())["model_type"]
    assert len(built) == (2 if ATTN_Q in architecture(model_type).tensors else 1)
    extra = [build_mutant("gguf-missing-tensor", root, tmp_path / "missing")] * (
        fixture == "tiny-llama"
    )
    playbook, artifacts = _stage(tmp_path, root, [*built.values(), *extra], {"prompt": PROMPT})
    finding = _one(TraceDiff().check(playbook, artifacts))
    assert finding.outcome is Outcome.FALSIFIED
    assert finding.details["problem_count"] == len(built)
    for name, path in built.items():
        problem = _problem_of(finding, path.name)
        assert f": {FIRST_LAYER[name]} " in problem, problem  # tiny-qwen2: "block 0 + final norm"
        assert "by layer: embedding" in problem
    if extra:
        # Weights that do not fill the model are not traced: G1 and F-ROSETTA-DIFF-002 say so.
        (lost,) = finding.details["not_compared"]  # type: ignore[misc]
        assert extra[0].name in lost and "missing tensors" in lost


@pytest.mark.slow
def test_a_checkpoint_reference_with_swapped_layers_diverges_at_block_0(tmp_path: Path) -> None:
    root = fixture_path("tiny-llama")
    swapped = build_mutant("layers-swapped", root, tmp_path / "m")
    trace = {"prompt": PROMPT, "reference": str(swapped)}
    finding = _one(TraceDiff().check(*_stage(tmp_path, root, [], trace)))
    assert finding.outcome is Outcome.FALSIFIED
    assert finding.reason.startswith(f"reference {swapped.name} (f32): block 0 cosine")
    assert "embedding 1.00000" in finding.reason  # the embeddings were not swapped


@pytest.mark.slow
def test_a_drifted_checkpoint_against_the_clean_one_diverges_at_the_embedding(
    tmp_path: Path,
) -> None:
    root = fixture_path("tiny-qwen2")
    drifted = build_mutant("noise-drift", root, tmp_path / "m")
    # The run's checkpoint is the mutant; the clean one is the reference it is held to.
    trace = {"prompt": PROMPT, "reference": str(root)}
    finding = _one(TraceDiff().check(*_stage(tmp_path, drifted, [], trace)))
    assert finding.outcome is Outcome.FALSIFIED
    # tiny-qwen2 is stored in bf16: its floor is bf16's.
    assert finding.reason.startswith(f"reference {root.name} (bf16): embedding cosine")
    assert f"below {MIN_LAYER_COSINE['bf16']:g}" in finding.reason


@pytest.mark.slow
def test_the_playbook_floor_overrides_the_table(tmp_path: Path) -> None:
    root = fixture_path("tiny-qa")
    q4 = root / "tiny-qa-q4_0.gguf"
    strict = {"prompt": PROMPT, "min_layer_cosine": {"q4_0": 0.9999}}
    finding = _one(TraceDiff().check(*_stage(tmp_path, root, [q4], strict)))
    assert finding.outcome is Outcome.FALSIFIED and "below 0.9999" in finding.reason


@pytest.mark.slow
def test_run_records_the_trace_diff_and_assesses_comp(tmp_path: Path) -> None:
    fixture = "tiny-qa"
    book = tmp_path / "book.yaml"
    # Only this check compares the formats here: the others have their own tests.
    off = json.dumps({k: {"enabled": False} for k in OTHER_DIFFERENTIAL})
    book.write_text(
        f"name: {fixture}\n"
        f"model: {{id: apr-qa/{fixture}, path: {json.dumps(str(fixture_path(fixture)))}}}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors, gguf],"
        " quantizations: [q8_0], max_tokens: 8}\n"
        "failure_policy: collect-all\n"
        f"scenarios:\n  - {{name: s, prompt: {json.dumps(PROMPT)}, oracle: garbage}}\n"
        f"trace_payload: {{prompt: {json.dumps(PROMPT)}, gates: [{GATE}]}}\n"
        f"differential_tests: {off}\n",
        encoding="utf-8",
    )
    api.run([book], api.RunConfig(tmp_path / "out"))
    read = read_evidence([tmp_path / "out" / "evidence.jsonl"])
    (record,) = [r for r in read.records if r.gate == GATE]
    assert record.outcome is Outcome.CORROBORATED, record.reason
    assert "q8_0 (tiny-qa-q8_0.gguf)" in record.reason
    assert record.metrics["min_layer_cosine"] >= MIN_LAYER_COSINE["q8_0"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    comp = next(c for c in summary["models"][0]["categories"] if c["category"] == "COMP")
    assert comp["assessed"] and comp["executed"] == comp["passed"] == 1
