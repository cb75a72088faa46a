"""F-REGR-GOLDEN-001: each cell answers the golden file's scenarios as the reference did.

A cell-stage check: with the cell's model loaded, every golden entry of the
cell's modality is asked again at temperature 0 and its generated token ids are
compared with the golden ones, position by position (:func:`golden.agreement`).
Where the artifact should be exact (the safetensors checkpoint on transformers,
the reference's own runtime) every token must agree; a GGUF must agree on at
least its quantization's share (``DEFAULT_THRESHOLDS``, overridden by the
playbook's ``golden.thresholds``). The record gives the agreement rate and the
first position where the answers part.

A golden entry with no output is skipped with the reason, never a pass; a
golden file that no longer matches its hash was refused before the run began
(``api.run``), and if it changed since, every cell skips with the reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apr_qa.checks import Stage, register
from apr_qa.errors import UsageError
from apr_qa.evidence import Outcome, ScenarioInfo
from apr_qa.golden import GoldenEntry, TokenAgreement, agreement, read_golden

__all__ = ["DEFAULT_THRESHOLDS", "GATE", "GoldenOutputs", "golden_of", "threshold_for"]

GATE = "F-REGR-GOLDEN-001"
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "f32": 0.9,
    "f16": 0.9,
    "bf16": 0.9,
    "q8_0": 0.8,
    "q6_k": 0.7,
    "q5_0": 0.7,
    "q5_1": 0.7,
    "q5_k_m": 0.7,
    "q5_k_s": 0.7,
}
"""Least token agreement a GGUF quantization must reach; 0.5 for the rest (4 bits and
below). The safetensors checkpoint on the reference's runtime must agree exactly."""
LOW_BIT_THRESHOLD = 0.5
SNIPPET = 60


def golden_of(playbook: Any) -> tuple[Path, str | None, Mapping[str, Any]] | None:
    """``(path resolved beside the playbook, sha256, section)``, or None without one."""
    section: Mapping[str, Any] = playbook.sections.get("golden", {})
    if not section.get("path"):
        return None
    path = Path(section["path"])
    if not path.is_absolute():
        path = playbook.path.parent / path
    return path, section.get("sha256"), section


def threshold_for(fmt: str | None, quant: str | None, section: Mapping[str, Any]) -> float:
    """The least agreement a cell must reach: exact on the reference's own format."""
    if fmt == "safetensors":
        return 1.0
    overrides: Mapping[str, Any] = section.get("thresholds", {})
    key = (quant or "").lower()
    if key in overrides:
        return float(overrides[key])
    return DEFAULT_THRESHOLDS.get(key, LOW_BIT_THRESHOLD)


def _reason(entry: GoldenEntry, text: str, a: TokenAgreement, need: float, where: str) -> str:
    head = f"{a.rate:.0%} of tokens agree with the golden output (at least {need:.0%} for {where})"
    if a.first_divergence is None:
        return f"{head}; identical ({a.tokens} tokens)"
    return (
        f"{head}; first divergence at token {a.first_divergence} of {a.golden_tokens}: "
        f"golden {entry.text[:SNIPPET]!r}, now {text[:SNIPPET]!r}"
    )


@register(Stage.CELL)
class GoldenOutputs:
    """F-REGR-GOLDEN-001 for each golden entry of the cell's modality."""

    name = "golden-outputs"

    def run(self, session: Any) -> None:
        """Ask each golden scenario again and record its token agreement."""
        from apr_qa.backends import Generation
        from apr_qa.execute.cell import Lost, generation_metrics
        from apr_qa.scenarios import instantiate

        job = session.job
        playbook = job.playbook
        named = golden_of(playbook)
        if named is None or job.cell.modality not in ("run", "chat"):
            return
        path, sha256, section = named
        models = tuple(m for m in (playbook.model.id, playbook.model.stands_in_for) if m)
        try:
            golden = read_golden(path, sha256=sha256, models=models)
        except UsageError as exc:
            session.record(GATE, Outcome.SKIPPED, f"golden file refused: {exc}")
            return
        fmt, quant = job.cell.format, job.cell.quantization
        need = threshold_for(fmt, quant, section)
        where = f"{fmt} {quant}"
        planned_by_name = {p.name: p for p in job.scenarios if p.kind == "explicit"}
        for entry in golden.entries:
            if entry.modality != job.cell.modality:
                continue
            planned = planned_by_name.get(entry.scenario)
            info = ScenarioInfo(
                name=entry.scenario,
                id=planned.id if planned else f"golden#{entry.scenario}",
                prompt=entry.prompt,
                messages=entry.messages,
                file=str(planned.source.file) if planned and planned.source else None,
                line=planned.source.line if planned and planned.source else None,
            )
            if not entry.token_ids:
                reason = "the golden entry has no output: nothing to compare"
                session.record(GATE, Outcome.SKIPPED, reason, scenario=info)
                continue
            if planned is None:
                reason = "scenario no longer in the playbook (record the golden file again)"
                session.record(GATE, Outcome.SKIPPED, reason, scenario=info)
                continue
            instance = dataclasses.replace(
                instantiate(planned, playbook, job.cell.modality), temperature=0.0
            )
            asked = session.ask(
                instance,
                seed=0,
                max_tokens=entry.max_tokens,
                timeout_s=session.timeout_s,
                what="golden output",
            )
            if isinstance(asked, Lost):
                session.record(GATE, asked.outcome, asked.reason, scenario=info)
                if asked.outcome is Outcome.SKIPPED:
                    return  # interrupted
                continue
            if not isinstance(asked, Generation):
                reason = f"the model refused: {asked.error}"
                session.record(GATE, Outcome.FALSIFIED, reason, scenario=info)
                continue
            a = agreement(entry.token_ids, asked.token_ids)
            metrics = {
                **generation_metrics(asked),
                "token_agreement": a.rate,
                "first_divergence": float(-1 if a.first_divergence is None else a.first_divergence),
                "golden_tokens": float(a.golden_tokens),
                "agreement_threshold": need,
            }
            session.record(
                GATE,
                Outcome.CORROBORATED if a.rate >= need else Outcome.FALSIFIED,
                _reason(entry, asked.text, a, need, where),
                scenario=info,
                output=asked.text,
                expected=entry.text,
                metrics=metrics,
            )
