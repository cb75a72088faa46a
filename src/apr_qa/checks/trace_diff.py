"""F-TRACE-DIFF-001: every layer's hidden states agree with the reference's.

The playbook's safetensors checkpoint (the reference of the differential checks,
:func:`apr_qa.checks.differential.pairs`) is loaded in transformers, in a worker
process, and traces ``trace_payload.prompt`` (as F-TRACE-PAYLOAD does): its
hidden states, embedding output, each block's output, and the last block's
after the final norm. Then, in the same worker and one at a time, each other
artifact's weights replace the checkpoint's in the same model class and config
(the ``LoadWeights`` worker message, :mod:`apr_qa.models.hf_weights`) and trace
the same token ids:

- each GGUF of the model (the matrix's and ``differential_tests.compare_with``'s),
  dequantized by gguf-py, renamed through the name table, its q/k rows put back
  in Hugging Face's rotary order where its converter permutes them;
- ``trace_payload.reference``, another checkpoint of the same config.

Per layer, the cosine similarity of the two hidden states at each token: the
mean and the minimum over tokens. The gate is falsified when a layer's minimum
falls below the artifact's floor (:data:`MIN_LAYER_COSINE` by quantization,
``trace_payload.min_layer_cosine`` as a number or a map by quantization); the
reason names the first such layer, which is where a conversion bug starts: a
missing q/k permutation at block 0 (the first token, whose rotation is the
identity, stays exact), a swapped layer at that layer, corrupt quantization
scales at the embedding. An artifact whose weights do not fill the model is not
compared (F-ROSETTA-DIFF-002 and G1 judge it). Opt-in with ``trace_payload``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.differential import Runtime, RuntimeUnavailable, pairs, quantization_of
from apr_qa.checks.finding import Finding, Ledger
from apr_qa.checks.trace import section, trace_prompt

if TYPE_CHECKING:
    from apr_qa.playbook.model import Playbook

__all__ = [
    "GATE",
    "MIN_LAYER_COSINE",
    "LayerCosine",
    "TraceDiff",
    "Traced",
    "first_below",
    "layer_cosines",
    "min_cosine",
]

GATE = "F-TRACE-DIFF-001"

MIN_LAYER_COSINE: Mapping[str, float] = {
    "f32": 0.99999,
    "f16": 0.9999,
    "bf16": 0.999,
    "q8_0": 0.999,
    "q6_k": 0.995,
    "q5_0": 0.99,
    "q5_1": 0.99,
    "q5_k_m": 0.99,
    "q5_k_s": 0.99,
    "q4_k_m": 0.98,
    "q4_k_s": 0.98,
    "q4_0": 0.85,
    "q4_1": 0.85,
    "q3_k_m": 0.8,
    "q2_k": 0.7,
}
"""Floors of a layer's per-token cosine by quantization. Measured on the fixtures
(the worst token of the worst layer, prompts of 10-17 tokens): f32 and f16 1.0
to 6 digits, q8_0 0.99988, q4_k_m 0.9977, q4_0 0.944; the floors leave 10x
(f16: 100x) that distance from 1 where the next type's error allows, about 3x
for q4_0. Longer prompts and deeper models lower the worst token: set
``trace_payload.min_layer_cosine`` from a clean run. A type not listed gets
:data:`UNLISTED_MIN_COSINE`."""
UNLISTED_MIN_COSINE = 0.8


@dataclass(frozen=True)
class LayerCosine:
    """One layer's agreement over the traced tokens."""

    layer: str
    mean: float
    min: float


@dataclass(frozen=True)
class Traced:
    """One artifact compared with the reference, layer by layer."""

    label: str
    floor: float
    layers: tuple[LayerCosine, ...]


def layer_names(count: int) -> list[str]:
    """Names of the ``count`` hidden states transformers returns: the embedding
    output, each block's, the last block's after the final norm."""
    blocks = [f"block {i}" for i in range(count - 1)]
    if blocks:
        blocks[-1] += " + final norm"
    return ["embedding", *blocks][:count]


def layer_cosines(ref: npt.NDArray[np.float32], got: npt.NDArray[np.float32]) -> list[LayerCosine]:
    """Per layer of ``[layers, tokens, hidden]`` states, the cosine at each token
    (mean and minimum). A NaN anywhere gives NaN, which no floor accepts."""
    if ref.shape != got.shape:
        raise ValueError(f"hidden states of shape {got.shape}, the reference's {ref.shape}")
    out = []
    for name, a, b in zip(layer_names(len(ref)), ref, got, strict=True):
        x, y = a.astype(np.float64), b.astype(np.float64)
        na, nb = np.linalg.norm(x, axis=-1), np.linalg.norm(y, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = (x * y).sum(axis=-1) / (na * nb)
        # Two zero vectors agree; one zero vector against another does not.
        cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
        out.append(LayerCosine(name, float(cos.mean()), float(cos.min())))
    return out


def min_cosine(quantization: str, override: object) -> float:
    """The floor for an artifact: the playbook's (a number, or a map by
    quantization), else :data:`MIN_LAYER_COSINE`."""
    quant = quantization.lower()
    if isinstance(override, int | float) and not isinstance(override, bool):
        return float(override)
    if isinstance(override, Mapping):
        chosen = {str(k).lower(): v for k, v in override.items()}
        if quant in chosen:
            return float(chosen[quant])
    return MIN_LAYER_COSINE.get(quant, UNLISTED_MIN_COSINE)


def first_below(layers: Sequence[LayerCosine], floor: float) -> LayerCosine | None:
    """The first layer whose worst token is below ``floor`` (NaN counts as below)."""
    return next((c for c in layers if not c.min >= floor), None)


def _shown(layers: Sequence[LayerCosine]) -> str:
    return ", ".join(f"{c.layer} {c.min:.5f}" for c in layers)


def _targets(
    playbook: Playbook, artifacts: Sequence[Artifact], settings: Mapping[str, Any]
) -> dict[Path, list[tuple[Path, str, str]]]:
    """Each safetensors reference with what it is compared with: (path, quantization,
    label)."""
    found: dict[Path, list[tuple[Path, str, str]]] = {
        a.path: [] for a in artifacts if a.ref.format == "safetensors"
    }
    for pair in pairs(playbook, artifacts):
        label = f"{pair.quantization} ({pair.gguf.name})"
        found.setdefault(pair.reference, []).append((pair.gguf, pair.quantization, label))
    extra = settings.get("reference")
    if extra:
        path = Path(str(extra))
        path = path if path.is_absolute() else playbook.path.parent / path
        quant = quantization_of(path)
        for others in found.values():
            others.append((path, quant, f"reference {path.name} ({quant})"))
    return found


def _start(
    reference: Path, prompt: str, trust: bool
) -> tuple[Runtime, list[int], npt.NDArray[np.float32]]:
    """The reference loaded in a worker, the prompt's ids and its hidden states."""
    runtime = Runtime(reference, "safetensors", trust_remote_code=trust)
    try:
        ids = runtime.tokenize(prompt)
        if not ids:
            raise RuntimeUnavailable(f"{reference.name}: the prompt tokenized to nothing")
        return runtime, ids, runtime.hidden_states(ids)
    except RuntimeUnavailable:
        runtime.close()
        raise


def _trace_one(
    reference: Path,
    others: Sequence[tuple[Path, str, str]],
    prompt: str,
    override: object,
    trust: bool,
) -> tuple[list[Traced], list[str]]:
    """Trace the reference, then each other artifact's weights in its model; the
    comparisons, and why any was not made."""
    traced: list[Traced] = []
    why: list[str] = []
    session: tuple[Runtime, list[int], npt.NDArray[np.float32]] | None = None
    try:
        for path, quant, label in others:
            try:
                # A fresh model after a failed load: its weights are half written.
                session = session or _start(reference, prompt, trust)
                runtime, ids, base = session
                runtime.load_weights(path)
                states = runtime.hidden_states(ids)
            except RuntimeUnavailable as exc:
                why.append(f"{label}: not compared: {exc}")
                if session is not None:
                    session[0].close()
                session = None
                continue
            floor = min_cosine(quant, override)
            traced.append(Traced(label, floor, tuple(layer_cosines(base, states))))
    finally:
        if session is not None:
            session[0].close()
    return traced, why


@register(Stage.MODEL)
class TraceDiff:
    """F-TRACE-DIFF-001 over every artifact traced against the safetensors reference."""

    name = "trace-diff"

    def check(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> Iterable[Finding]:
        """One finding when ``trace_payload`` is on and asks for the gate."""
        settings = section(playbook)
        if settings is None:
            return []
        asked = settings.get("gates")
        if asked is not None and GATE not in {str(g) for g in asked}:
            return []
        targets = _targets(playbook, artifacts, settings)
        prompt = trace_prompt(playbook, settings)
        override = settings.get("min_layer_cosine")
        ledger = Ledger(GATE)
        traced: list[Traced] = []
        why: list[str] = []
        for reference, others in targets.items():
            done, lost = _trace_one(
                reference, others, prompt, override, playbook.model.trust_remote_code
            )
            traced += done
            why += lost
        for one in traced:
            bad = first_below(one.layers, one.floor)
            problem = (
                f"{one.label}: {bad.layer} cosine {bad.min:.5f} (mean {bad.mean:.5f}) "
                f"below {one.floor:g}; by layer: {_shown(one.layers)}"
                if bad is not None
                else ""
            )
            ledger.check(bad is None, one.label, problem)
        if not targets:
            skipped = "not compared: the model has no safetensors reference to trace"
        elif not any(targets.values()):
            skipped = "not compared: no GGUF and no trace_payload.reference to trace"
        else:
            skipped = "; ".join(why) or "not compared"
        worst = min(
            ((one, c) for one in traced for c in one.layers),
            key=lambda item: item[1].min if not math.isnan(item[1].min) else -math.inf,
            default=None,
        )
        passed = (
            f"every layer agrees with the reference over the traced tokens "
            f"({', '.join(one.label for one in traced)}; lowest {worst[0].label} "
            f"{worst[1].layer} {worst[1].min:.5f}, floor {worst[0].floor:g})"
            if worst is not None
            else ""
        )
        details = {
            "layers": {
                one.label: [[c.layer, _number(c.mean), _number(c.min)] for c in one.layers]
                for one in traced
            },
            "not_compared": why,
        }
        finding = ledger.finding(passed=passed, skipped=skipped, details=details)
        metrics = (
            {"min_layer_cosine": worst[1].min, "artifacts": float(len(traced))}
            if worst is not None and math.isfinite(worst[1].min)
            else {}
        )
        return [Finding(finding.gate, finding.passed, finding.reason, finding.details, metrics)]


def _number(x: float) -> float | None:
    """Evidence is strict JSON: no NaN."""
    return x if math.isfinite(x) else None
