"""Profile CI: throughput and latency of each cell, asserted against thresholds.

Runs in every cell the playbook's ``profile_ci`` section selects (``enabled``,
optional ``formats`` and ``backends``), after G2, with the model loaded:
``warmup`` unmeasured generations (default 1), then ``measure`` measured ones
(default 5) of the cell's first probe prompt, temperature 0, each of a fixed length:
``tokens`` (default: the playbook's ``max_tokens``) asked as both ``max_tokens`` and
``min_tokens``, so the end of generation is suppressed until then, as llama-bench
and vLLM's benchmarks decode a fixed number of tokens. A model that answers in one
token would otherwise measure latency, not throughput (the same cell: 2 tok/s on a
busy machine, 236 idle). A runtime that cannot force a length (a command line), a
server that ignores ``min_tokens`` and a context or cap that ends the run first give
shorter runs: every record's reason then says how many tokens a run covered and
why. The command line's ``--assert-throughput``, ``--assert-p50`` and
``--assert-p99`` override the section's assertions (and enable it).

Figures (every gate's record carries them all in its metrics):

- ``tokens``: generated tokens of the measured runs (``measure`` x ``tokens_asked``
  when the length was forced);
- ``throughput_tok_s``: generated tokens of the measured runs / their total wall time
  (end to end: prompt processing included) -- F-PROFILE-CI-001, against
  ``min_throughput_cpu`` / ``min_throughput_gpu`` for the cell's device, else
  ``min_throughput``;
- ``decode_tok_s``: the median of each run's rate after its first token;
- ``prefill_tok_s``: prompt tokens / time to first token, over the measured runs;
- ``latency_p50_ms``, ``latency_p99_ms``: request latency percentiles -- F-PROFILE-CI-003
  against ``max_p50_ms``, F-PROFILE-CI-002 against ``max_p99_ms``;
- ``ttft_p50_ms``, ``ttft_p99_ms``: time to first token percentiles;
- ``peak_rss_mb``: the worker's (or the server's) peak resident memory, when known.

Percentiles are nearest-rank (the smallest measured value with at least p% of the
runs at or below it): with 5 runs p99 is the slowest run, so a single slow run
shows. A gate with no threshold is skipped (its figures are still recorded); a
measured run that hung, crashed or was refused fails every asserted gate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apr_qa.backends import Generation
from apr_qa.checks import Stage, register
from apr_qa.evidence import Outcome
from apr_qa.gates import PROFILE_GATES

if TYPE_CHECKING:
    from apr_qa.execute.cell import CellRunner
    from apr_qa.playbook.model import Playbook

__all__ = [
    "GATES",
    "Figures",
    "ProfileSettings",
    "figures_of",
    "length_note",
    "percentile",
    "profile_settings",
    "verdicts",
]

GATES = PROFILE_GATES
_TRUE = (True, "true", "yes", "on", 1)


@dataclass(frozen=True)
class ProfileSettings:
    """What the playbook's ``profile_ci`` section (with command-line overrides) asks."""

    enabled: bool = False
    warmup: int = 1
    measure: int = 5
    tokens: int | None = None
    """Tokens per run, forced (end of generation suppressed); None: ``max_tokens``."""
    formats: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    assertions: Mapping[str, float] | None = None

    def selects(self, fmt: str | None, device: str | None) -> bool:
        """Whether the cell is profiled."""
        if not self.enabled:
            return False
        if self.formats and fmt not in self.formats:
            return False
        return not (self.backends and device not in self.backends)

    def floor(self, device: str) -> float | None:
        """The throughput floor for ``device`` (tok/s)."""
        given = dict(self.assertions or {})
        value = given.get(f"min_throughput_{device}", given.get("min_throughput"))
        return float(value) if value is not None else None

    def ceiling(self, key: str) -> float | None:
        """``max_p50_ms`` or ``max_p99_ms``."""
        value = dict(self.assertions or {}).get(key)
        return float(value) if value is not None else None


def profile_settings(playbook: Playbook) -> ProfileSettings:
    """The settings of a playbook (the defaults, disabled, when it has no section)."""
    raw: Mapping[str, Any] = playbook.sections.get("profile_ci") or {}
    if not raw:
        return ProfileSettings()
    enabled = raw.get("enabled", True)
    return ProfileSettings(
        enabled=(enabled.lower() if isinstance(enabled, str) else enabled) in _TRUE,
        warmup=int(raw.get("warmup", 1)),
        measure=max(1, int(raw.get("measure", 5))),
        tokens=int(raw["tokens"]) if raw.get("tokens") is not None else None,
        formats=tuple(str(f) for f in raw.get("formats") or ()),
        backends=tuple(str(b) for b in raw.get("backends") or ()),
        assertions={k: float(v) for k, v in dict(raw.get("assertions") or {}).items()},
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``p``% at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Figures:
    """One cell's measured figures."""

    values: Mapping[str, float]


def figures_of(runs: Sequence[Generation], peak_rss_mb: float | None) -> Figures:
    """The figures of the measured runs."""
    tokens = sum(len(g.token_ids) for g in runs)
    wall = sum(g.duration_s for g in runs)
    ttft = sum(g.ttft_s for g in runs)
    values = {
        "runs": float(len(runs)),
        "tokens": float(tokens),
        "throughput_tok_s": tokens / wall if wall > 0 else 0.0,
        "decode_tok_s": float(statistics.median(g.tok_per_s for g in runs)),
        "prefill_tok_s": sum(g.prompt_tokens for g in runs) / ttft if ttft > 0 else 0.0,
        "latency_p50_ms": percentile([g.duration_s for g in runs], 50) * 1000,
        "latency_p99_ms": percentile([g.duration_s for g in runs], 99) * 1000,
        "ttft_p50_ms": percentile([g.ttft_s for g in runs], 50) * 1000,
        "ttft_p99_ms": percentile([g.ttft_s for g in runs], 99) * 1000,
    }
    if peak_rss_mb is not None:
        values["peak_rss_mb"] = peak_rss_mb
    return Figures(values)


def length_note(runs: Sequence[Generation], asked: int, command_line: bool) -> str:
    """What length the figures cover: ``asked`` tokens per run, or fewer and why."""
    counts = sorted(len(g.token_ids) for g in runs)
    if counts and counts[0] >= asked:
        return f"{len(runs)} runs x {asked} tokens, end of generation suppressed"
    covered = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]} to {counts[-1]}"
    if command_line:
        why = "a command-line runtime cannot be made to go on past the model's end"
    elif any(g.finish_reason == "length" and len(g.token_ids) < asked for g in runs):
        why = "the runtime bounded the run first (its context window or a max_tokens cap)"
    else:
        why = (
            "the runtime stopped at an end of generation despite min_tokens (it ignores"
            " min_tokens, or holds back only EOS, as llama-cpp-python's server does)"
        )
    noun = "token" if counts[-1] == 1 else "tokens"
    return f"the figures cover {covered} {noun} per run, not the {asked} asked: {why}"


def verdicts(
    figures: Figures, settings: ProfileSettings, device: str, note: str = ""
) -> list[tuple[str, bool | None, str]]:
    """(gate, passed or None when no threshold, reason) for each profile gate;
    ``note`` (what length the runs covered) ends every reason."""
    v = figures.values
    out: list[tuple[str, bool | None, str]] = []
    floor = settings.floor(device)
    got = v["throughput_tok_s"]
    if floor is None:
        out.append((GATES[0], None, f"no throughput floor set ({got:.1f} tok/s measured)"))
    else:
        ok = got >= floor
        out.append((GATES[0], ok, f"{got:.1f} tok/s {'>=' if ok else '<'} floor {floor:g}"))
    for gate, key, figure in (
        (GATES[1], "max_p99_ms", "latency_p99_ms"),
        (GATES[2], "max_p50_ms", "latency_p50_ms"),
    ):
        ceiling = settings.ceiling(key)
        got = v[figure]
        name = figure.split("_")[1]
        if ceiling is None:
            out.append((gate, None, f"no {key} set ({name} {got:.0f} ms measured)"))
        else:
            ok = got <= ceiling
            sign = "<=" if ok else ">"
            out.append((gate, ok, f"{name} {got:.0f} ms {sign} ceiling {ceiling:g} ms"))
    return [(gate, ok, f"{reason}; {note}" if note else reason) for gate, ok, reason in out]


def _peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@register(Stage.CELL)
class ProfileCI:
    """F-PROFILE-CI-001..003 in the cells ``profile_ci`` selects."""

    name = "profile-ci"

    def run(self, session: CellRunner) -> None:
        """Warm up, measure, record one verdict per profile gate."""
        from apr_qa.checks.probe import probes
        from apr_qa.execute.cell import Lost
        from apr_qa.execute.command_client import CommandClient

        job = session.job
        settings = profile_settings(job.playbook)
        if not settings.selects(job.cell.format, job.cell.backend):
            return
        _, candidates = probes(session)
        instance = candidates[0]
        length = settings.tokens if settings.tokens is not None else job.playbook.matrix.max_tokens
        runs: list[Generation] = []
        problem: str | None = None
        for i in range(settings.warmup + settings.measure):
            asked = session.ask(
                instance,
                seed=0,
                max_tokens=length,
                min_tokens=length,
                timeout_s=session.timeout_s,
                what="profile run",
                basic=False,
            )
            if isinstance(asked, Lost) and asked.outcome is Outcome.SKIPPED:
                for gate in GATES:
                    session.record(gate, Outcome.SKIPPED, asked.reason)
                return
            if not isinstance(asked, Generation):
                problem = asked.reason if isinstance(asked, Lost) else asked.error
                break
            if i >= settings.warmup:
                runs.append(asked)
        device = job.cell.backend or "cpu"
        if problem is not None:
            asserted = (
                settings.floor(device) is not None,
                settings.ceiling("max_p99_ms") is not None,
                settings.ceiling("max_p50_ms") is not None,
            )
            for gate, wanted in zip(GATES, asserted, strict=True):
                if wanted:
                    session.record(gate, Outcome.FALSIFIED, f"a profile run failed: {problem}")
                else:
                    session.record(gate, Outcome.SKIPPED, f"no threshold; a run failed: {problem}")
            return
        worker = session.worker
        figures = figures_of(runs, _peak_rss_mb(worker.pid if worker is not None else None))
        metrics = dict(figures.values)
        metrics["warmup"] = float(settings.warmup)
        metrics["tokens_asked"] = float(length)
        # The name the summary's throughput rows and the certification registry read.
        metrics["tok_per_s"] = metrics["throughput_tok_s"]
        note = length_note(runs, length, isinstance(worker, CommandClient))
        for gate, passed, reason in verdicts(figures, settings, device, note):
            outcome = {True: Outcome.CORROBORATED, False: Outcome.FALSIFIED, None: Outcome.SKIPPED}
            session.record(gate, outcome[passed], reason, metrics=metrics)
