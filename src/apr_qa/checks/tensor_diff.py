"""F-ROSETTA-DIFF-001..003: the GGUF holds the checkpoint's tensors, in the
checkpoint's layout, within its quantization's error.

Each safetensors tensor is looked up in the GGUF through the one name table
(:mod:`apr_qa.models.architectures`), read one pair at a time (peak memory: two
tensors and their float32 copies), dequantized with gguf-py, and compared:

- ``001`` layout: a tensor whose shape is the reference's reversed, a square
  matrix that matches only transposed, q/k rows in the rotary order the
  architecture does not use (llama.cpp's llama graph wants them permuted,
  :mod:`apr_qa.models.rotary`; qwen2's, gemma2's and phi3's want Hugging
  Face's order; in phi3's fused ``attn_qkv`` the q and k parts are looked at);
- ``002`` a tensor missing from the GGUF, or of another shape;
- ``003`` values: the relative error ``‖gguf − ref‖ / ‖ref‖`` above the
  tolerance of the GGUF tensor's stored type (:data:`TOLERANCE`); max absolute
  error and cosine similarity are kept beside it.

Gemma stores norms as ``scale − 1`` in safetensors and the scale in GGUF: the
reference gets its ``norm_offset`` added first. A GGUF without ``output.weight``
is tied by llama.cpp's rule: the checkpoint's ``lm_head`` is compared with the
GGUF's token embedding, and a GGUF ``output.weight`` of a tied checkpoint with
its embedding. ``differential_tests.tensor_diff.filter`` ("embed,lm_head", or
"all") keeps the tensors whose name contains one of its words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.differential import Pair, Switch, pairs, switch
from apr_qa.checks.finding import Finding, Ledger

if TYPE_CHECKING:
    from apr_qa.models.architectures import Architecture
    from apr_qa.models.readers import ModelReader
    from apr_qa.playbook.model import Playbook

__all__ = ["GATES", "TOLERANCE", "TensorDiff", "TensorRow", "diff_pair", "worst_tensors"]

LAYOUT, SHAPES, VALUES = "F-ROSETTA-DIFF-001", "F-ROSETTA-DIFF-002", "F-ROSETTA-DIFF-003"
GATES = (LAYOUT, SHAPES, VALUES)

TOLERANCE: Mapping[str, float] = {
    "f32": 1e-6,
    "f16": 2e-3,
    "bf16": 1e-2,
    "q8_0": 0.02,
    "q6_k": 0.04,
    "q5_0": 0.08,
    "q5_1": 0.08,
    "q5_k": 0.08,
    "q4_0": 0.15,
    "q4_1": 0.15,
    "q4_k": 0.15,
    "q3_k": 0.3,
    "q2_k": 0.5,
}
"""Relative error ceilings by stored type. Measured on the fixtures: f16 2.2e-4,
q8_0 under 0.006, q6_k 0.018, q4_k 0.071, q4_0 0.094; ceilings leave about twice
that. A type not listed gets :data:`UNLISTED_TOLERANCE`."""
UNLISTED_TOLERANCE = 0.3
UNQUANTIZED = ("f32", "f16", "bf16")
CHUNK = 1 << 20
"""Elements measured at a time (8 MB of float64 per operand)."""


@dataclass(frozen=True)
class TensorRow:
    """One compared tensor: the numbers a reader debugging a conversion wants."""

    name: str
    gguf_name: str
    dtype: str
    max_abs: float
    rel_error: float
    cosine: float
    tolerance: float


def tolerance_for(dtype: str, overrides: Mapping[str, float]) -> float:
    """The ceiling for a stored type: the playbook's, else :data:`TOLERANCE`."""
    if dtype in overrides:
        return overrides[dtype]
    if dtype in UNQUANTIZED and "*" in overrides:
        return overrides["*"]
    return TOLERANCE.get(dtype, UNLISTED_TOLERANCE)


def _measure(ref: npt.NDArray[np.float32], got: npt.NDArray[np.float32]) -> tuple[float, ...]:
    """Max abs error, relative error and cosine, accumulated in float64 over chunks
    so that memory stays at the two tensors whatever their size."""
    a, b = ref.reshape(-1), got.reshape(-1)
    dot = norm_a = norm_b = norm_d = max_abs = 0.0
    for start in range(0, a.size, CHUNK):
        x = a[start : start + CHUNK].astype(np.float64)
        y = b[start : start + CHUNK].astype(np.float64)
        d = x - y
        dot += float(x @ y)
        norm_a += float(x @ x)
        norm_b += float(y @ y)
        norm_d += float(d @ d)
        max_abs = max(max_abs, float(np.abs(d).max(initial=0.0)))
    na, nb, nd = np.sqrt(norm_a), np.sqrt(norm_b), np.sqrt(norm_d)
    rel = float(nd / na) if na > 0 else float(nd)
    cos = float(dot / (na * nb)) if na > 0 and nb > 0 else float(na == nb)
    return max_abs, rel, cos


def _wanted(name: str, gguf_name: str, words: Sequence[str]) -> bool:
    return not words or any(w in name or w in gguf_name for w in words)


def _filter(options: Mapping[str, Any]) -> list[str]:
    raw = options.get("filter", "all")
    words = raw.split(",") if isinstance(raw, str) else [str(w) for w in raw]
    words = [w.strip() for w in words if w.strip()]
    return [] if words in (["all"], ["*"]) else words


class _PairDiff:
    """One pair's comparison, feeding the three ledgers."""

    def __init__(self, pair: Pair, sw: Switch, ledgers: Mapping[str, Ledger]) -> None:
        self.pair = pair
        self.tolerance = sw.tolerance
        self.words = _filter(sw.options)
        self.led = ledgers
        self.rows: list[TensorRow] = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run(self, st: ModelReader, gg: ModelReader) -> None:
        from apr_qa.models.architectures import EMBED, OUTPUT, architecture

        arch = architecture(st.config.get("model_type"))
        heads = int(st.config.get("num_attention_heads") or 0)
        kv = int(st.config.get("num_key_value_heads") or heads)
        gguf_infos = {i.name: i for i in gg.tensor_infos()}
        self.shapes = {i.name: i.shape for i in st.tensor_infos()}
        st_names = set(self.shapes)
        out_hf, out_gguf = OUTPUT.name("safetensors"), OUTPUT.name("gguf")
        plan: list[tuple[str, str]] = []
        for info in st.tensor_infos():
            gguf_name = arch.gguf_name(info.name)
            if gguf_name == out_gguf and out_gguf not in gguf_infos:
                gguf_name = EMBED.name("gguf")  # llama.cpp ties a GGUF without output
            if gguf_name is not None and _wanted(info.name, gguf_name, self.words):
                plan.append((info.name, gguf_name))
        if (
            out_hf not in st_names
            and out_gguf in gguf_infos
            and _wanted(out_hf, out_gguf, self.words)
        ):
            plan.append((EMBED.name("safetensors"), out_gguf))  # tied checkpoint, untied GGUF
        for hf_name, gguf_name in plan:
            self._one(st, gg, arch, hf_name, gguf_name, gguf_infos, (heads, kv))

    def _one(
        self,
        st: ModelReader,
        gg: ModelReader,
        arch: Architecture,
        hf_name: str,
        gguf_name: str,
        gguf_infos: Mapping[str, Any],
        heads: tuple[int, int],
    ) -> None:
        label = f"{self.pair.quantization}: {hf_name}"
        ginfo = gguf_infos.get(gguf_name)
        ref_shape = self.shapes[hf_name]
        if ginfo is None:
            self.led[SHAPES].fail(f"{label}: the GGUF has no {gguf_name}")
            return
        if ginfo.shape != ref_shape:
            if len(ref_shape) >= 2 and ginfo.shape == ref_shape[::-1]:
                self.led[LAYOUT].fail(
                    f"{label}: {gguf_name} is stored transposed, {ginfo.shape} "
                    f"where the checkpoint has {ref_shape}"
                )
            else:
                self.led[SHAPES].fail(
                    f"{label}: {gguf_name} has shape {ginfo.shape}, the checkpoint {ref_shape}"
                )
            return
        self.led[SHAPES].check(True, label, "")
        ref = st.read_tensor(hf_name)
        offset = arch.scale_offset("safetensors")
        if offset and arch.is_norm("safetensors", hf_name):
            ref = ref + np.float32(offset)
        got = gg.read_tensor(gguf_name)
        tol = tolerance_for(ginfo.dtype, self.tolerance)
        # Heads of the rows the rotary permutation moves: q's, k's, or both in a fused qkv.
        rotary = next((n for role, n in (("attn_q", heads[0]), ("attn_k", heads[1]),
                                         ("attn_qkv", heads))
                       if f".{role}." in gguf_name), None)  # fmt: skip
        expected, others = got, _other_layouts(got, rotary, arch.gguf_permutes_qk)
        if rotary is not None and arch.gguf_permutes_qk:
            expected = _unpermute(got, rotary)
        max_abs, rel, cos = _measure(ref, expected)
        del expected
        for why, view in others if rel > tol else ():
            # Only a tensor that fails is measured again in another layout.
            measured = _measure(ref, view())
            if measured[1] <= tol:
                (max_abs, rel, cos) = measured
                self.led[LAYOUT].fail(f"{label}: {gguf_name} {why}")
                break
        else:
            self.led[LAYOUT].check(True, label, "")
        self.rows.append(TensorRow(hf_name, gguf_name, ginfo.dtype, max_abs, rel, cos, tol))
        self.led[VALUES].check(
            rel <= tol,
            label,
            f"{label}: {gguf_name} ({ginfo.dtype}) differs by {rel:.3g} relative "
            f"(tolerance {tol:g}; max abs {max_abs:.3g}, cosine {cos:.4f})",
        )


def _unpermute(
    got: npt.NDArray[np.float32], heads: int | tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Undo the rotary permutation of q or k rows; ``(heads, kv heads)``: of the q and
    k parts of a fused qkv (phi3), rows in the order q, k, v."""
    from apr_qa.models.rotary import move_fused_qk, unpermute_qk

    try:
        if isinstance(heads, int):
            return unpermute_qk(got, heads)
        return move_fused_qk(got, *heads, unpermute_qk)
    except ValueError:
        return got  # rows that do not split into heads: compared as stored


def _other_layouts(
    got: npt.NDArray[np.float32], rotary: int | tuple[int, int] | None, permutes: bool
) -> list[tuple[str, Callable[[], npt.NDArray[np.float32]]]]:
    """The layouts a broken conversion leaves a tensor in, each made on demand."""
    if rotary is not None:
        if permutes:
            return [("rows are left in Hugging Face's rotary order", lambda: got)]
        return [("rows are permuted for llama's rotary layout", lambda: _unpermute(got, rotary))]
    if got.ndim == 2 and got.shape[0] == got.shape[1]:
        return [("is stored transposed", lambda: np.ascontiguousarray(got.T))]
    return []


def diff_pair(pair: Pair, sw: Switch, ledgers: Mapping[str, Ledger]) -> list[TensorRow]:
    """Compare one pair into ``ledgers`` (by gate); the compared tensors' rows.

    A file that cannot be read is G0's finding: nothing is compared.
    """
    from apr_qa.errors import UsageError
    from apr_qa.models.readers import open_model

    diff = _PairDiff(pair, sw, ledgers)
    try:
        with open_model(pair.reference) as st, open_model(pair.gguf) as gg:
            diff.run(st, gg)
    except UsageError:
        return diff.rows  # unreadable: G0-INTEGRITY-001/005 say so
    return diff.rows


@register(Stage.MODEL)
class TensorDiff:
    """F-ROSETTA-DIFF-001..003 over every (safetensors, GGUF) pair of the model."""

    name = "tensor-diff"

    def check(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> Iterable[Finding]:
        """One finding per gate the playbook asks for, over all pairs."""
        sw = switch(playbook, "tensor_diff")
        if not sw.enabled:
            return []
        ledgers = {gate: Ledger(gate) for gate in GATES}
        rows: list[TensorRow] = []
        found = pairs(playbook, artifacts)
        for pair in found:
            rows += diff_pair(pair, sw, ledgers)
        what = ", ".join(p.quantization for p in found) or "none"
        skipped = (
            "not compared: the model has no safetensors and GGUF pair"
            if not found
            else "not compared: no tensor of the pairs could be read or matched"
        )
        worst = max(rows, key=lambda r: r.rel_error / r.tolerance, default=None)
        metrics = (
            {
                "tensors": float(len(rows)),
                "max_rel_error": max(r.rel_error for r in rows),
                "min_cosine": min(r.cosine for r in rows),
                "max_abs_error": max(r.max_abs for r in rows),
                "worst_rel_to_tolerance": worst.rel_error / worst.tolerance,
            }
            if worst is not None
            else {}
        )
        passed = {
            LAYOUT: f"every tensor in the checkpoint's layout (gguf {what})",
            SHAPES: f"every tensor present with its shape (gguf {what})",
            VALUES: (
                f"every tensor within its type's tolerance (gguf {what}; worst "
                f"{worst.name} {worst.rel_error:.3g} of {worst.tolerance:g})"
                if worst is not None
                else ""
            ),
        }
        findings = []
        for gate in GATES:
            if not sw.runs(gate):
                continue
            finding = ledgers[gate].finding(passed=passed[gate], skipped=skipped)
            # The report's per-tensor view: the worst tensors against their ceilings.
            expected = {"worst_tensors": worst_tensors(rows)} if gate == VALUES and rows else None
            findings.append(
                Finding(
                    finding.gate,
                    finding.passed,
                    finding.reason,
                    finding.details,
                    metrics,
                    expected,
                )
            )
        return findings


WORST_SHOWN = 10
"""Tensors a finding keeps for the report's per-tensor view."""


def worst_tensors(rows: Sequence[TensorRow]) -> list[dict[str, object]]:
    """The :data:`WORST_SHOWN` rows furthest over (or nearest to) their tolerance."""

    def key(r: TensorRow) -> float:  # NaN (a NaN in the file) ranks first
        ratio = r.rel_error / r.tolerance
        return math.inf if math.isnan(ratio) else ratio

    def number(x: float) -> float | None:  # evidence is strict JSON: no NaN or Inf
        return x if math.isfinite(x) else None

    return [
        {
            "tensor": r.name,
            "stored": r.gguf_name,
            "dtype": r.dtype,
            "measure": "relative error",
            "value": number(r.rel_error),
            "tolerance": r.tolerance,
            "cosine": number(r.cosine),
            "max_abs": number(r.max_abs),
        }
        for r in sorted(rows, key=key, reverse=True)[:WORST_SHOWN]
    ]
