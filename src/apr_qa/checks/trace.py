"""F-TRACE-PAYLOAD-001..003: one prompt traced through the loaded model.

Once per artifact and backend (in the cell of the matrix's first modality), the
playbook's ``trace_payload.prompt`` is tokenized by the cell's own runtime and:

- transformers (safetensors): every layer's output comes back through the
  worker's ``HiddenStates`` message, ``[layers + 1, tokens, hidden]``;
- llama.cpp (GGUF) exposes no per-layer activations: the final logits
  (``Score``) stand in for 001, and 003 is skipped with that reason.

Gates:

- ``001`` falsified by a NaN or Inf in any layer's activations (or in the GGUF's
  logits); the reason names the first such layer;
- ``002`` falsified when the greedy answer to the prompt is garbage by the cell's
  garbage oracle (the one G4 uses, with the model's PAD and special tokens);
- ``003`` falsified when a layer's largest per-token RMS exceeds
  ``trace_payload.max_activation_rms`` (default :data:`MAX_ACTIVATION_RMS`).
  transformers gives the last layer's output after the final norm, so the last
  layer's raw residual is not judged.

The section is opt-in, as in the original's playbooks: a playbook without
``trace_payload`` (or with ``enabled: false``) traces nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.checks import Stage, register
from apr_qa.evidence import Outcome, ScenarioInfo

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellRunner
    from apr_qa.playbook.model import Playbook

__all__ = [
    "DEFAULT_PROMPT",
    "GATES",
    "MAX_ACTIVATION_RMS",
    "TracePayload",
    "layer_report",
    "section",
    "trace_prompt",
]

NONFINITE, GARBAGE, EXPLODING = "F-TRACE-PAYLOAD-001", "F-TRACE-PAYLOAD-002", "F-TRACE-PAYLOAD-003"
GATES = (NONFINITE, GARBAGE, EXPLODING)
SECTION = "trace_payload"
DEFAULT_PROMPT = "The capital of France is"
TRACE_MAX_TOKENS = 16
MAX_ACTIVATION_RMS = 1e4
"""Largest per-token RMS a layer's output may reach. Real models' "massive
activations" put a few dimensions near 1e3 (a per-token RMS of tens); the fixtures
stay under 10; float16 overflows at 65504."""
_INFO = ScenarioInfo(name="trace-payload", id="trace-payload")


def section(playbook: Playbook) -> Mapping[str, Any] | None:
    """The playbook's ``trace_payload`` section when it is on, else None (opt-in)."""
    found: Mapping[str, Any] | None = playbook.sections.get(SECTION)
    if found is None:
        return None
    enabled = found.get("enabled", True)
    return found if enabled is True or str(enabled).lower() == "true" else None


def trace_prompt(playbook: Playbook, settings: Mapping[str, Any]) -> str:
    """``trace_payload.prompt``, else the playbook's first prompt, else the default."""
    return str(settings.get("prompt") or _first_prompt(playbook))


def layer_report(states: npt.NDArray[np.float32]) -> tuple[int | None, list[float]]:
    """The first layer holding a non-finite value (None: every one finite), and each
    layer's largest per-token RMS over its finite values."""
    first_bad: int | None = None
    rms: list[float] = []
    for layer, values in enumerate(states):
        finite = np.isfinite(values)
        if first_bad is None and not finite.all():
            first_bad = layer
        clean = np.where(finite, values, 0.0).astype(np.float64)
        per_token = np.sqrt((clean**2).mean(axis=-1)) if clean.size else np.zeros(1)
        rms.append(float(per_token.max(initial=0.0)))
    return first_bad, rms


@register(Stage.CELL)
class TracePayload:
    """F-TRACE-PAYLOAD-001..003 in the first modality's cell of each artifact."""

    name = "trace-payload"

    def run(self, session: CellRunner) -> None:
        """Trace the prompt; record one verdict per gate the playbook asks for."""
        job = session.job
        settings = section(job.playbook)
        if settings is None or job.cell.modality != job.playbook.matrix.modalities[0]:
            return
        asked = settings.get("gates")
        wanted = set(GATES) if asked is None else {str(g) for g in asked} & set(GATES)
        prompt = trace_prompt(job.playbook, settings)
        limit = float(settings.get("max_activation_rms", MAX_ACTIVATION_RMS))
        verdicts = self._activations(session, prompt, limit)
        verdicts[GARBAGE] = self._garbage(session, prompt)
        for gate in GATES:
            if gate in wanted:
                outcome, reason, metrics = verdicts[gate]
                session.record(gate, outcome, reason, scenario=_INFO, metrics=metrics)

    def _activations(
        self, session: CellRunner, prompt: str, limit: float
    ) -> dict[str, tuple[Outcome, str, dict[str, float]]]:
        from apr_qa.execute.cell import Refused
        from apr_qa.execute.messages import Hidden, HiddenStates, Logits, Score, Tokenize, Tokens

        gguf = session.job.cell.format == "gguf"
        tokens = session.request(Tokenize(prompt), timeout_s=session.timeout_s, what="trace")
        if not isinstance(tokens, Tokens) or not tokens.ids:
            why = _why_not(tokens, "the prompt tokenized to nothing")
            return {g: (_lost_outcome(tokens), why, {}) for g in (NONFINITE, EXPLODING)}
        ids = tuple(tokens.ids)
        message = Score(ids) if gguf else HiddenStates(ids)
        reply = session.request(message, timeout_s=session.timeout_s, what="trace")
        if not isinstance(reply, Hidden | Logits):
            outcome = _lost_outcome(reply)
            if isinstance(reply, Refused) and reply.unasked:
                outcome = Outcome.SKIPPED  # longer than the context: nothing was asked
            why = _why_not(reply, "")
            return {g: (outcome, why, {}) for g in (NONFINITE, EXPLODING)}
        states = reply.values[None] if isinstance(reply, Logits) else reply.values
        first_bad, rms = layer_report(states)
        what = "the final logits" if gguf else f"{len(states)} layer outputs"
        finite: tuple[Outcome, str, dict[str, float]]
        if first_bad is None:
            finite = (Outcome.CORROBORATED, f"{what} finite over {len(ids)} tokens", {})
        else:
            where = "the final logits" if gguf else f"layer {first_bad} of {len(states) - 1}"
            finite = (Outcome.FALSIFIED, f"NaN or Inf in {where} ({len(ids)} tokens)", {})
        if gguf:
            why = "not checked: llama.cpp exposes no per-layer activations"
            return {NONFINITE: finite, EXPLODING: (Outcome.SKIPPED, why, {})}
        peak = max(range(len(rms)), key=rms.__getitem__)
        metrics = {"max_activation_rms": rms[peak], "layers": float(len(rms) - 1)}
        shown = ", ".join(f"{v:.3g}" for v in rms)
        exploding = (
            (Outcome.CORROBORATED if rms[peak] <= limit else Outcome.FALSIFIED),
            f"largest per-token RMS {rms[peak]:.3g} at layer {peak} (limit {limit:g}; "
            f"by layer: {shown})",
            metrics,
        )
        return {NONFINITE: finite, EXPLODING: exploding}

    def _garbage(self, session: CellRunner, prompt: str) -> tuple[Outcome, str, dict[str, float]]:
        from apr_qa.backends import Generation
        from apr_qa.execute.cell import Lost
        from apr_qa.playbook.model import OracleSpec
        from apr_qa.scenarios import Instance

        instance = Instance(
            name="trace-payload",
            family="trace",
            prompt=prompt,
            messages=None,
            oracle=OracleSpec("garbage"),
            expected=None,
            max_tokens=TRACE_MAX_TOKENS,
            category="STAB",
            gate=GARBAGE,
            temperature=0.0,
        )
        asked = session.ask(
            instance,
            seed=0,
            max_tokens=TRACE_MAX_TOKENS,
            timeout_s=session.timeout_s,
            what="trace",
            basic=False,
        )
        if isinstance(asked, Lost):
            return asked.outcome, asked.reason, {}
        if not isinstance(asked, Generation):
            return Outcome.FALSIFIED, f"the model refused the trace prompt: {asked.error}", {}
        oracle = session.garbage_oracle
        if oracle is None:
            return Outcome.SKIPPED, "not checked: no garbage oracle in this cell", {}
        verdict = oracle(asked.text, prompt=prompt)
        shown = asked.text if len(asked.text) <= 80 else asked.text[:77] + "..."
        return verdict.outcome, f"{verdict.reason}: {shown!r}", {}


def _first_prompt(playbook: Playbook) -> str:
    """The playbook's first prompt (its model's own prompt form), else the default."""
    from apr_qa.checks.differential import playbook_prompts

    return next(iter(playbook_prompts(playbook)), DEFAULT_PROMPT)


def _lost_outcome(reply: object) -> Outcome:
    from apr_qa.execute.cell import Lost

    return reply.outcome if isinstance(reply, Lost) else Outcome.FALSIFIED


def _why_not(reply: object, empty: str) -> str:
    from apr_qa.execute.cell import Lost, Refused

    if isinstance(reply, Lost):
        return reply.reason
    if isinstance(reply, Refused):
        return f"the runtime refused: {reply.error}"
    return empty or f"unexpected reply {type(reply).__name__}"
