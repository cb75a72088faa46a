"""``apr-qa diff A B``: is this GGUF the same model as that checkpoint?

The three differential families (tensor diff, tokenizer parity, logit
comparison) on one pair, outside any playbook, with a table an engineer
debugging a conversion can read: every gate's verdict, the tensors furthest from
their tolerance, and the logit statistics. The same code the MODEL stage runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from apr_qa.checks.differential import Pair, RuntimeUnavailable, Switch
from apr_qa.checks.finding import Finding, Ledger
from apr_qa.errors import EnvironmentProblem, ExitCode, UsageError

__all__ = ["DiffReport", "diff_artifacts", "render_table"]

WORST_SHOWN = 8
DEFAULT_PROMPTS = (
    "What is 2 + 3?",
    "The capital of France is",
    "def add(a, b):",
)


@dataclass(frozen=True)
class DiffReport:
    """What ``apr-qa diff`` found on one pair."""

    reference: str
    gguf: str
    quantization: str
    findings: tuple[Finding, ...]
    tensors: tuple[dict[str, Any], ...]
    """The compared tensors, furthest from their tolerance first."""
    logits: dict[str, float] = field(default_factory=dict)
    unavailable: tuple[str, ...] = ()
    """Why some comparison could not be made (a runtime that did not load)."""

    @property
    def exit_code(self) -> int:
        """1 on any difference, else 3 when something could not be loaded, else 0."""
        if any(f.passed is False for f in self.findings):
            return int(ExitCode.FALSIFIED)
        if self.unavailable:
            return int(ExitCode.ENVIRONMENT)
        return int(ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (``schema_version`` 1)."""
        return {
            "schema_version": 1,
            "reference": self.reference,
            "gguf": self.gguf,
            "quantization": self.quantization,
            "exit_code": self.exit_code,
            "findings": [
                {"gate": f.gate, "outcome": str(f.outcome), "reason": f.reason}
                for f in self.findings
            ],
            "tensors": list(self.tensors),
            "logits": self.logits,
            "unavailable": list(self.unavailable),
        }


def _order(a: Path, b: Path) -> tuple[Path, Path]:
    for path in (a, b):
        if not path.exists():
            raise EnvironmentProblem(f"{path}: no such file or directory")
    ggufs = [p for p in (a, b) if p.is_file() and p.suffix.lower() == ".gguf"]
    if len(ggufs) != 1:
        raise UsageError(
            f"apr-qa diff compares one safetensors checkpoint with one GGUF file; got {a} and {b}"
        )
    gguf = ggufs[0]
    return (b if gguf == a else a), gguf


def diff_artifacts(a: Path, b: Path, prompts: Sequence[str] = DEFAULT_PROMPTS) -> DiffReport:
    """Compare a checkpoint with a GGUF (in either order).

    Raises ``UsageError`` unless exactly one is a GGUF, ``EnvironmentProblem``
    when a path does not exist or cannot be read at all.
    """
    from apr_qa.checks import logit_compare, tensor_diff, tokenizer_parity
    from apr_qa.checks.differential import quantization_of

    reference, gguf = _order(a, b)
    quant = quantization_of(gguf)
    if quant == "unknown":
        raise EnvironmentProblem(f"{gguf}: cannot be read as GGUF")
    pair = Pair(reference, gguf, quant)
    sw = Switch(True, None, {}, {})
    gates = (*tensor_diff.GATES, *tokenizer_parity.GATES, *logit_compare.GATES)
    ledgers = {g: Ledger(g) for g in gates}
    unavailable: list[str] = []
    rows = tensor_diff.diff_pair(pair, sw, ledgers)
    if not rows:
        raise EnvironmentProblem(f"{reference}: no tensor could be read and matched with {gguf}")
    texts = list(dict.fromkeys([*prompts, *tokenizer_parity.PROBES]))
    try:
        want: dict[str, list[int]] | str = tokenizer_parity.reference_ids(reference, texts)
    except RuntimeUnavailable as e:
        want = str(e)
    unavailable += tokenizer_parity.compare_pair(pair, sw, want, ledgers)
    logits: dict[str, float] = {}
    try:
        side = logit_compare.reference_side(reference, list(prompts), 8, False)
        stats = logit_compare.compare_pair(pair, sw, side, ledgers)
    except RuntimeUnavailable as e:
        stats = str(e)
    if isinstance(stats, str):
        unavailable.append(stats)
    else:
        logits = {k: float(v) for k, v in asdict(stats).items()}
    findings = tuple(
        ledgers[g].finding(passed="held", skipped="; ".join(unavailable) or "nothing compared")
        for g in gates
    )
    ordered = sorted(rows, key=lambda r: r.rel_error / r.tolerance, reverse=True)
    return DiffReport(
        str(reference),
        str(gguf),
        quant,
        findings,
        tuple(asdict(r) for r in ordered),
        logits,
        tuple(dict.fromkeys(unavailable)),
    )


def render_table(report: DiffReport) -> str:
    """The report as text: verdicts, worst tensors, logit statistics."""
    lines = [f"{report.gguf} ({report.quantization}) vs {report.reference}", ""]
    for f in report.findings:
        lines.append(f"  {f.outcome!s:<12} {f.gate:<20} {f.reason}")
    lines += ["", f"  {'tensor':<44} {'type':<6} {'rel err':>9} {'tol':>7} {'cosine':>8}"]
    for row in report.tensors[:WORST_SHOWN]:
        lines.append(
            f"  {row['name']:<44} {row['dtype']:<6} {row['rel_error']:>9.3g} "
            f"{row['tolerance']:>7.3g} {row['cosine']:>8.5f}"
        )
    if len(report.tensors) > WORST_SHOWN:
        lines.append(
            f"  ... {len(report.tensors) - WORST_SHOWN} more, each closer to its tolerance"
        )
    if report.logits:
        s = report.logits
        lines += [
            "",
            f"  KL mean {s['kl_mean']:.3g}  p99 {s['kl_p99']:.3g}  max {s['kl_max']:.3g}  "
            f"same top-1 {s['same_top1']:.1%}  Δp rms {s['dp_rms']:.3g}  max {s['dp_max']:.3g}"
            f"  ({int(s['positions'])} positions)",
        ]
    return "\n".join(lines)
