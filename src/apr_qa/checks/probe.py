"""G2 basic inference: the cell's own prompts yield text.

A probe in the model's own prompt form says more than a fixed question: a model
trained on ``Question: ... Answer:`` may well answer a bare question with its
end-of-text token, and that is no defect. So G2 asks, in order of
preference, the playbook's ``gates.g2_probe`` prompts, else the cell's first
explicit scenarios in the cell's modality, else the built-in probes; it holds
when one of them yields non-blank text, and fails when every one comes back
blank or refused. One record lists what was tried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from apr_qa.backends import Generation
from apr_qa.checks import Stage, register
from apr_qa.evidence import Outcome, ScenarioInfo
from apr_qa.playbook.model import OracleSpec
from apr_qa.scenarios import Instance, instantiate

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellRunner

__all__ = ["BUILTIN_PROBES", "GATE", "MAX_PROBES", "PROBE_MAX_TOKENS", "BasicInference", "probes"]

GATE = "G2-INFER-001"
PROBE_ID = "g2-probe"
PROBE_MAX_TOKENS = 16
MAX_PROBES = 3
"""At most this many explicit scenarios serve as probes (the playbook's own list is used whole)."""

BUILTIN_PROBES: tuple[str, ...] = (
    "Once upon a time,",
    "The weather today is",
    "Name three colors.",
)
"""Used only when the playbook gives no probe and the cell has no explicit scenario:
a story opening, an open completion and a request, so a base model and an
instruction model each have something to continue. None is a question any
bundled fixture was trained on."""


def _probe(name: str, text: str, modality: str) -> Instance:
    messages: tuple[Mapping[str, str], ...] | None = None
    if modality != "run":
        messages = ({"role": "user", "content": text},)
    return Instance(
        name=name,
        family="probe",
        prompt=text if modality == "run" else None,
        messages=messages,
        oracle=OracleSpec("garbage"),
        expected=None,
        max_tokens=PROBE_MAX_TOKENS,
        category="GATEWAY",
        gate=GATE,
    )


def probes(session: CellRunner) -> tuple[str, list[Instance]]:
    """Where the probes come from, and the probes, for this cell."""
    job = session.job
    modality = job.cell.modality or "run"
    own = job.playbook.gates.g2_probe
    if own:
        return "gates.g2_probe", [
            _probe(f"g2-probe-{i + 1}", t, modality) for i, t in enumerate(own)
        ]
    explicit: list[Instance] = []
    for planned in job.scenarios:
        if planned.kind != "explicit" or len(explicit) >= MAX_PROBES:
            continue
        instance = instantiate(planned, job.playbook, modality)
        if instance.text.strip():
            explicit.append(instance)
    if explicit:
        return "the cell's first explicit scenarios", explicit
    return "the built-in probes", [
        _probe(f"g2-builtin-{i + 1}", t, modality) for i, t in enumerate(BUILTIN_PROBES)
    ]


def _shown(instance: Instance) -> str:
    text = instance.text.replace("\n", "\\n")
    return repr(text if len(text) <= 60 else text[:57] + "...")


@register(Stage.CELL)
class BasicInference:
    """G2-INFER-001 with the cell's own prompts."""

    name = "g2-probe"

    def run(self, session: CellRunner) -> None:
        """Ask each probe until one yields text; record one G2 verdict."""
        from apr_qa.execute.cell import Lost, generation_metrics, scenario_info

        origin, candidates = probes(session)
        tried: list[str] = []
        lost: list[Lost] = []
        unasked = 0
        for instance in candidates:
            asked = session.ask(
                instance,
                seed=0,
                max_tokens=PROBE_MAX_TOKENS,
                timeout_s=session.timeout_s,
                what="G2 probe",
            )
            # One key for G2 in a cell, whichever probe answered: runs compare by it.
            info = dataclasses.replace(scenario_info(None, instance), id=PROBE_ID)
            if isinstance(asked, Lost):
                if asked.outcome is Outcome.SKIPPED:  # interrupted: nothing was decided
                    session.record(GATE, asked.outcome, asked.reason, scenario=info)
                    return
                lost.append(asked)
                tried.append(f"{_shown(instance)} {asked.outcome} ({asked.reason})")
                continue
            if not isinstance(asked, Generation):
                unasked += asked.unasked
                tried.append(f"{_shown(instance)} refused ({asked.error})")
                continue
            if asked.token_ids and asked.text.strip():
                session.record(
                    GATE,
                    Outcome.CORROBORATED,
                    f"{_shown(instance)} yielded {len(asked.token_ids)} tokens "
                    f"(probe {len(tried) + 1} of {len(candidates)}, from {origin})",
                    scenario=info,
                    output=asked.text,
                    metrics=generation_metrics(asked),
                )
                return
            tried.append(
                f"{_shown(instance)} yielded no text "
                f"({len(asked.token_ids)} tokens, finish {asked.finish_reason})"
            )
        # Every probe hung or crashed: G2 says so (G3 records the hang or crash too).
        outcome = lost[0].outcome if len(lost) == len(candidates) else Outcome.FALSIFIED
        if unasked == len(candidates):  # no probe fits the context: nothing was asked
            outcome = Outcome.SKIPPED
        session.record(
            GATE,
            outcome,
            f"no probe yielded text ({len(tried)} from {origin}): " + "; ".join(tried),
            scenario=ScenarioInfo(name="g2-probe", id=PROBE_ID),
        )
