"""F-ROSETTA-FP-001..003 and F-ROSETTA-STATS-001..006: every artifact's tensor
fingerprint (:mod:`apr_qa.models.fingerprint`), judged on its own and against a
reference written earlier by ``apr-qa fingerprint``.

Opt-in, as in the original's playbooks: ``differential_tests.fingerprint`` turns
the FP gates on, ``differential_tests.validate_stats`` the STATS gates.

On its own (no reference needed):

- ``FP-001`` every tensor's statistics are finite (no NaN or Inf value);
- ``STATS-005`` no norm's scale is all zeros, ``STATS-006`` every norm's scale
  has std > 0. This is the LayerNorm-zero rule: a zeroed or constant norm is a
  converter that lost it (GH-189). There is no "mean close to 1" rule (the
  original's 005): trained norms are not centred at 1 (tiny-llama's final norm
  averages 1.31, real models' range from 0.1 to 8).

Against the reference (``differential_tests.fingerprint.reference`` or
``validate_stats.reference``, a path relative to the playbook):

- ``FP-002`` checksums match, for tensors of the same format and stored type
  (the same file again: has it changed?);
- ``FP-003`` the same tensor names with the same shapes;
- ``STATS-001..004`` each tensor's mean and std within its role's tolerance of
  the reference's, measured in units of the reference's std: norms (001),
  embedding and output projection (002), attention (003), FFN (004).

A quantized tensor's statistics move by up to its quantization's relative error
(``|Δstd| ≤ ‖e‖``), so its tolerance is at least that type's tensor-diff ceiling
(:data:`apr_qa.checks.tensor_diff.TOLERANCE`). Without a reference the reference
gates are skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.differential import Switch, switch
from apr_qa.checks.finding import Finding, Ledger

if TYPE_CHECKING:
    from apr_qa.models.fingerprint import Fingerprint, TensorStats
    from apr_qa.playbook.model import Playbook

__all__ = [
    "FP_GATES",
    "ROLE_GATE",
    "ROLE_TOLERANCE",
    "STATS_GATES",
    "Deviation",
    "TensorFingerprint",
    "judge",
]

FINITE, CHECKSUM, TENSOR_SET = "F-ROSETTA-FP-001", "F-ROSETTA-FP-002", "F-ROSETTA-FP-003"
FP_GATES = (FINITE, CHECKSUM, TENSOR_SET)
NORM_ZERO, NORM_STD = "F-ROSETTA-STATS-005", "F-ROSETTA-STATS-006"
ROLE_GATE: Mapping[str, str] = {
    "norm": "F-ROSETTA-STATS-001",
    "embedding": "F-ROSETTA-STATS-002",
    "lm_head": "F-ROSETTA-STATS-002",
    "attention": "F-ROSETTA-STATS-003",
    "ffn": "F-ROSETTA-STATS-004",
}
STATS_GATES = (
    "F-ROSETTA-STATS-001",
    "F-ROSETTA-STATS-002",
    "F-ROSETTA-STATS-003",
    "F-ROSETTA-STATS-004",
    NORM_ZERO,
    NORM_STD,
)
ROLE_TOLERANCE: Mapping[str, float] = {
    "norm": 0.001,
    "embedding": 0.1,
    "lm_head": 0.1,
    "attention": 0.01,
    "ffn": 0.01,
}
"""Largest ``max(|Δmean|, |Δstd|) / std_ref`` per role; the original's defaults for
layernorm, embedding and attention, FFN as attention, the output as the embedding.
Measured on the fixtures: every clean GGUF (f32 to q4_k_m) within 0.005 of its
checkpoint; the noise-drift mutant 0.12 to 0.14 (attention, FFN)."""
_ALIASES = {"layernorm": "norm", "layer_norm": "norm", "embed": "embedding", "mlp": "ffn"}
MAX_ROWS = 10
"""Tensors a finding keeps in ``expected["worst_tensors"]`` (the report's per-tensor view)."""


@dataclass(frozen=True)
class Deviation:
    """One tensor compared with its reference: how far its statistics moved."""

    name: str
    role: str
    dtype: str
    deviation: float
    tolerance: float
    mean: float
    ref_mean: float
    std: float
    ref_std: float


def tolerances(sw: Switch) -> dict[str, float]:
    """Role tolerances: the defaults, then the playbook's (``*`` applies to every role)."""
    out = dict(ROLE_TOLERANCE)
    if "*" in sw.tolerance:
        out = dict.fromkeys(out, sw.tolerance["*"])
    for key, value in sw.tolerance.items():
        role = _ALIASES.get(key, key)
        if role in out:
            out[role] = value
    return out


def _quant_floor(dtype: str) -> float:
    from apr_qa.checks.tensor_diff import TOLERANCE, UNLISTED_TOLERANCE, UNQUANTIZED

    return 0.0 if dtype in UNQUANTIZED else TOLERANCE.get(dtype, UNLISTED_TOLERANCE)


def deviation(got: TensorStats, ref: TensorStats, tolerance: float) -> Deviation:
    """How far ``got``'s mean and std moved from ``ref``'s, in units of ``ref``'s std."""
    moved = max(abs(got.mean - ref.mean), abs(got.std - ref.std))
    scaled = moved / ref.std if ref.std > 0 else moved
    tol = max(tolerance, _quant_floor(got.dtype), _quant_floor(ref.dtype))
    return Deviation(
        got.name, got.role, got.dtype, scaled, tol, got.mean, ref.mean, got.std, ref.std
    )


def _own(fp: Fingerprint, ledgers: Mapping[str, Ledger]) -> None:
    """The gates that need no reference."""
    judge_zero = fp.architecture != ""  # an unknown architecture's norm storage is unknown
    for t in fp.tensors:
        ledgers[FINITE].check(
            t.finite,
            t.name,
            f"{t.name}: {t.nan_count} NaN and {t.inf_count} Inf value(s) (mean {t.mean:.4g})",
        )
        if t.role != "norm":
            continue
        if judge_zero:
            ledgers[NORM_ZERO].check(
                t.zero_fraction < 1.0, t.name, f"{t.name}: the norm's scale is all zeros"
            )
        ledgers[NORM_STD].check(
            t.std > 0,
            t.name,
            f"{t.name}: the norm's scale is constant ({t.mean:.4g} everywhere, std 0)",
        )


def _against(
    fp: Fingerprint,
    ref: Fingerprint,
    roles: Mapping[str, float],
    ledgers: Mapping[str, Ledger],
) -> list[Deviation]:
    """The gates that compare with the reference; the compared tensors' deviations."""
    mine, theirs = fp.by_name(), ref.by_name()
    same_kind = fp.format == ref.format
    for name, r in theirs.items():
        t = mine.get(name)
        if t is None:
            ledgers[TENSOR_SET].fail(f"{name}: in the reference, missing here")
        else:
            ledgers[TENSOR_SET].check(
                t.shape == r.shape,
                name,
                f"{name}: shape {t.shape}, the reference {r.shape}",
            )
    for name, t in mine.items():
        # Across formats a tensor the name table does not know (llama.cpp's rope_freqs)
        # is the format's own, not an addition.
        if name not in theirs and (same_kind or t.role != "other"):
            ledgers[TENSOR_SET].fail(f"{name}: not in the reference")
    rows: list[Deviation] = []
    for name, t in mine.items():
        found = theirs.get(name)
        if found is None or found.shape != t.shape:
            continue
        r = found
        if same_kind and t.dtype == r.dtype:
            ledgers[CHECKSUM].check(
                t.checksum == r.checksum,
                name,
                f"{name}: checksum {t.checksum}, the reference {r.checksum} ({t.dtype})",
            )
        gate = ROLE_GATE.get(t.role)
        if gate is None or not (t.finite and r.finite):
            continue  # FP-001 judges non-finite statistics
        row = deviation(t, r, roles[t.role])
        rows.append(row)
        ledgers[gate].check(
            row.deviation <= row.tolerance,
            name,
            f"{name} ({t.role}, {t.dtype}): mean {t.mean:.4g} / std {t.std:.4g} against the "
            f"reference's {r.mean:.4g} / {r.std:.4g}, {row.deviation:.3g} of its std "
            f"(tolerance {row.tolerance:g})",
        )
    return rows


def _reference_path(playbook: Playbook) -> Path | None:
    section = playbook.sections.get("differential_tests", {})
    for entry in ("fingerprint", "validate_stats"):
        given = section.get(entry, {}).get("reference")
        if given:
            path = Path(str(given))
            return path if path.is_absolute() else playbook.path.parent / path
    return None


def judge(
    fp: Fingerprint,
    ref: Fingerprint | None,
    roles: Mapping[str, float] = ROLE_TOLERANCE,
    *,
    no_reference: str = "not compared: the playbook names no fingerprint reference",
) -> list[Finding]:
    """Every fingerprint and stats gate's finding for ``fp`` (``ref``: the reference)."""
    ledgers = {gate: Ledger(gate) for gate in FP_GATES + STATS_GATES}
    _own(fp, ledgers)
    rows = _against(fp, ref, roles, ledgers) if ref is not None else []
    worst = sorted(rows, key=lambda r: r.deviation / r.tolerance if r.tolerance else 0.0)
    table = [
        {
            "tensor": r.name,
            "role": r.role,
            "dtype": r.dtype,
            "measure": "Δ mean/std in reference stds",
            "value": r.deviation,
            "tolerance": r.tolerance,
        }
        for r in reversed(worst)
    ]
    where = f"{fp.format} {fp.quantization}"
    skipped = no_reference if ref is None else "not compared: no tensor of this kind"
    passed = {
        FINITE: f"{len(fp.tensors)} tensors' statistics finite ({where})",
        CHECKSUM: f"every checksum matches the reference ({where})",
        TENSOR_SET: f"the reference's {len(ref.tensors) if ref else 0} tensors, same shapes",
        NORM_ZERO: "no norm's scale is all zeros",
        NORM_STD: "every norm's scale varies (std > 0)",
    }
    findings = []
    for gate, ledger in ledgers.items():
        own = gate in (FINITE, NORM_ZERO, NORM_STD)
        why_skip = "not checked: the artifact has no tensor of this kind" if own else skipped
        if gate == CHECKSUM and ref is not None and ref.format != fp.format:
            why_skip = f"not compared: the reference is {ref.format}, checksums differ by format"
        default = f"every tensor within its role's tolerance of the reference ({where})"
        finding = ledger.finding(passed=passed.get(gate, default), skipped=why_skip)
        expected = None
        if gate in ROLE_GATE.values():
            # The report's per-tensor view: this role's tensors furthest from the reference.
            mine = [row for row in table if ROLE_GATE[str(row["role"])] == gate][:MAX_ROWS]
            expected = {"worst_tensors": mine} if mine else None
        findings.append(
            Finding(gate, finding.passed, finding.reason, finding.details, expected=expected)
        )
    return findings


@register(Stage.ARTIFACT)
class TensorFingerprint:
    """The fingerprint and stats gates on every artifact."""

    name = "fingerprint"

    def check(self, artifact: Artifact) -> Iterable[Finding]:
        """One finding per gate the playbook asks for: the FP gates with a
        ``fingerprint`` entry, the STATS gates with a ``validate_stats`` entry."""
        from apr_qa.errors import UsageError
        from apr_qa.models.fingerprint import fingerprint, read_fingerprint

        playbook = artifact.playbook
        section = playbook.sections.get("differential_tests", {})
        # Opt-in, entry by entry, as in the original's playbooks: a run that asks for no
        # fingerprint keeps its COMP to the cross-format comparisons.
        fp_switch = switch(playbook, "fingerprint")
        stats_switch = switch(playbook, "validate_stats")
        fp_on = "fingerprint" in section and fp_switch.enabled
        stats_on = "validate_stats" in section and stats_switch.enabled
        if not (fp_on or stats_on):
            return []
        try:
            fp = fingerprint(artifact.path)
        except UsageError:
            return []  # unreadable: G0-INTEGRITY-001/005 say so
        ref, why = None, "not compared: the playbook names no fingerprint reference"
        path = _reference_path(playbook)
        if path is not None:
            try:
                ref = read_fingerprint(path)
            except UsageError as exc:
                why = f"not compared: {exc}"
        findings = judge(fp, ref, tolerances(stats_switch), no_reference=why)
        return [
            f
            for f in findings
            if (fp_on and f.gate in FP_GATES and fp_switch.runs(f.gate))
            or (stats_on and f.gate in STATS_GATES and stats_switch.runs(f.gate))
        ]
