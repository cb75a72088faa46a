"""The supervisor: resolve artifacts, preflight G0, run cells in workers, apply the
failure policy, aggregate G4, and stream every record to ``evidence.jsonl``."""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apr_qa.evidence import EvidenceWriter, Outcome, Record
from apr_qa.execute.cell import CellJob, CellResult, CellRunner, Halt
from apr_qa.execute.progress import Progress
from apr_qa.execute.records import CellRef, RecordFactory
from apr_qa.execute.warm import BACKEND_OF_FORMAT, WarmPool
from apr_qa.plan import Cell, Plan, Shard, build_plan
from apr_qa.playbook.model import Playbook

if TYPE_CHECKING:
    from apr_qa.models.sources import Resolution

__all__ = ["RunOptions", "RunOutcome", "execute"]

_FAILED = (Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED)


@dataclass(frozen=True)
class RunOptions:
    """How to run: where evidence goes, parallelism, overrides from the command line."""

    output_dir: Path
    workers: int = 1
    failure_policy: str | None = None
    backends: tuple[str, ...] | None = None
    shard: Shard | None = None
    trust_remote_code: bool = False
    convert_missing: bool = True
    progress: bool = False
    backend_override: str | None = None  # "fake" for engine tests


@dataclass
class RunOutcome:
    """What a run produced."""

    evidence: Path
    records: list[Record] = field(default_factory=list)
    interrupted: bool = False
    halted: dict[str, str] = field(default_factory=dict)


class _Run:
    def __init__(self, plan: Plan, options: RunOptions, warm: WarmPool | None = None) -> None:
        self.plan = plan
        self.options = options
        run_id = uuid.uuid4().hex[:12]
        self.factory = RecordFactory(run_id, str(plan.shard) if plan.shard else None)
        evidence = options.output_dir / "evidence.jsonl"
        evidence.unlink(
            missing_ok=True
        )  # a run replaces the evidence of the last run in this directory
        self.writer = EvidenceWriter(evidence)
        self.lock = threading.Lock()
        self.gpu_lock = threading.Lock()
        self.everything = Halt()
        self.per_model: dict[str, Halt] = defaultdict(Halt)
        self.policy: dict[str, str] = {}
        self.outcome = RunOutcome(self.writer.path)
        self.progress = Progress(
            enabled=options.progress, total=plan.test_count, cells=len(plan.cells)
        )
        self.runners: set[CellRunner] = set()
        self.warm = warm if warm is not None else WarmPool()

    # -- evidence and policy --------------------------------------------------------------

    def emit(self, record: Record) -> None:
        with self.lock:
            self.writer.write(record)
            self.outcome.records.append(record)
        if record.outcome not in _FAILED:
            return
        self.progress.failure()
        cell = record.cell
        policy = self.policy.get(record.model, "stop-on-p0")
        if policy == "fail-fast":
            self.everything.set(f"halted: fail-fast after {record.gate} {record.outcome} in {cell}")
        elif policy == "stop-on-p0" and record.category == "GATEWAY":
            self.per_model[record.model].set(
                f"halted: stop-on-p0 after {record.gate} {record.outcome} in {cell}"
            )

    def halt_reason(self, model: str) -> str | None:
        if self.everything.is_set():
            return self.everything.reason
        halt = self.per_model[model]
        return halt.reason if halt.is_set() else None

    def record(
        self,
        playbook: Playbook,
        gate: str,
        outcome: Outcome,
        reason: str,
        cell: CellRef,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.emit(
            self.factory.make(gate, outcome, reason, cell, playbook=playbook, metrics=metrics)
        )

    # -- preparation ----------------------------------------------------------------------

    def jobs_for(self, playbook: Playbook, cells: Sequence[Cell]) -> list[CellJob]:
        """Resolve artifacts, run G0 on each, and turn plan cells into jobs."""
        from apr_qa.models.sources import ModelRef, resolve

        model = playbook.model
        trust = model.trust_remote_code and self.options.trust_remote_code
        formats = sorted({c.format for c in cells if c.format != "apr"})
        quants = sorted(
            {c.quantization for c in cells if c.format == "gguf" and c.quantization != "auto"}
        )
        resolution: Resolution | None = None
        if formats and self.options.backend_override is None:
            ref = ModelRef(
                hf_repo=model.hf_repo,
                revision=model.revision,
                path=model.path,
                files=dict(model.files),
                trust_remote_code=trust,
            )
            resolution = resolve(
                ref,
                formats,
                quants,
                convert_missing=self.options.convert_missing,
                workdir=self.options.output_dir / "artifacts",
            )
        jobs: list[CellJob] = []
        checked: set[str] = set()
        for cell in cells:
            for job in self._cell_jobs(playbook, cell, resolution, trust):
                if job.skip_reason is None and job.path not in checked:
                    checked.add(job.path)
                    self.preflight(playbook, job)
                jobs.append(job)
        return jobs

    def _cell_jobs(
        self, playbook: Playbook, cell: Cell, resolution: Resolution | None, trust: bool
    ) -> Iterator[CellJob]:
        from apr_qa.backends.device import gpu_unavailable_reason

        scenarios = list(cell.scenarios())
        kind = self.options.backend_override or BACKEND_OF_FORMAT.get(cell.format, "-")

        def job(
            quant: str, path: str = "-", skip: str | None = None, converted: bool = False
        ) -> CellJob:
            ref = CellRef(playbook.model.id, cell.format, quant, cell.backend, cell.modality)
            return CellJob(
                playbook=playbook,
                cell=ref,
                backend_kind=kind if skip is None else "-",
                path=path,
                device=cell.backend,
                scenarios=scenarios,
                trust_remote_code=trust,
                skip_reason=skip,
                converted=converted,
            )

        if cell.format == "apr":
            yield job(cell.quantization, skip="skipped: format apr has no runtime in apr-qa")
            return
        if cell.modality == "serve":
            reason = "skipped: the serve modality is not supported by this version of apr-qa"
            yield job(cell.quantization, skip=reason)
            return
        if cell.backend == "gpu" and (why := gpu_unavailable_reason(kind)):
            yield job(cell.quantization, skip=f"skipped: gpu requested but unusable: {why}")
            return
        if resolution is None:  # the fake backend: the model path is its script
            yield job(cell.quantization, str(playbook.model.path))
            return
        artifacts = [
            a
            for a in resolution.artifacts
            if a.format == cell.format
            and (cell.format != "gguf" or cell.quantization in ("auto", a.quantization))
        ]
        if not artifacts:
            missing = [
                m.reason
                for m in resolution.missing
                if m.format == cell.format
                and (cell.format != "gguf" or m.quantization == cell.quantization)
            ]
            reason = (
                missing[0] if missing else f"no {cell.format} {cell.quantization} artifact found"
            )
            ref = job(cell.quantization).cell
            self.record(
                playbook, "G1-LOAD-001", Outcome.FALSIFIED, f"{ref} cannot load: {reason}", ref
            )
            yield job(cell.quantization, skip="not run: the artifact is missing")
            return
        for artifact in artifacts:
            yield job(
                artifact.quantization, str(artifact.path), converted=artifact.origin == "converted"
            )

    def preflight(self, playbook: Playbook, job: CellJob) -> None:
        """G0 on one artifact, once; a converted GGUF is recorded as G0-FORMAT-GGUF-001."""
        ref = CellRef(job.cell.model, job.cell.format, job.cell.quantization)
        if self.options.backend_override is not None:
            return
        if job.converted:
            self.record(
                playbook,
                "G0-FORMAT-GGUF-001",
                Outcome.CORROBORATED,
                f"{ref}: produced by the reference converter from the safetensors checkpoint",
                ref,
            )
        if not playbook.gates.g0_integrity:
            return
        from apr_qa.checks.integrity import check_integrity

        for finding in check_integrity(
            Path(job.path), expected_shape=dict(playbook.model.expected_shape)
        ):
            outcome = (
                Outcome.SKIPPED
                if finding.passed is None
                else Outcome.CORROBORATED
                if finding.passed
                else Outcome.FALSIFIED
            )
            self.record(playbook, finding.gate, outcome, finding.reason, ref)

    # -- execution ------------------------------------------------------------------------

    def run_job(self, job: CellJob) -> CellResult:
        model = job.cell.model
        if (reason := self.halt_reason(model)) is not None:
            runner = CellRunner(job, self.factory, self.emit, lambda: reason)
            runner.skip_rest(job.scenarios, reason)
            self.progress.cell_done()
            return runner.result
        runner = CellRunner(
            job,
            self.factory,
            self.emit,
            lambda: self.halt_reason(model),
            self.progress.advance,
            spawn=self.warm.take,
        )
        with self.lock:
            self.runners.add(runner)
        try:
            with (
                self.gpu_lock
                if job.device == "gpu" and not job.skip_reason
                else contextlib.nullcontext()
            ):
                result = runner.run()
        finally:
            with self.lock:
                self.runners.discard(runner)
            self.progress.cell_done()
        return result

    def g4(self, playbook: Playbook, results: Sequence[CellResult]) -> None:
        ref = CellRef(playbook.model.id)
        if not playbook.gates.g4_output_quality:
            self.record(
                playbook, "G4-GARBAGE-001", Outcome.SKIPPED, "G4 disabled by the playbook", ref
            )
            return
        outputs = sum(r.outputs for r in results)
        garbage = sum(r.garbage for r in results)
        limit = playbook.gates.g4_max_garbage_rate
        if outputs == 0:
            self.record(
                playbook, "G4-GARBAGE-001", Outcome.SKIPPED, "no scenario output to judge", ref
            )
            return
        rate = garbage / outputs
        outcome = Outcome.CORROBORATED if rate <= limit else Outcome.FALSIFIED
        self.record(
            playbook,
            "G4-GARBAGE-001",
            outcome,
            f"{garbage} of {outputs} outputs are garbage ({rate:.1%}; allowed {limit:.0%})",
            ref,
            metrics={
                "garbage_rate": rate,
                "garbage": float(garbage),
                "outputs": float(outputs),
                "garbage_limit": limit,
            },
        )

    def interrupt(self, signum: int, _frame: FrameType | None) -> None:
        self.outcome.interrupted = True
        self.everything.set(f"interrupted: {signal.Signals(signum).name}, not run")
        with self.lock:
            runners = list(self.runners)
        for runner in runners:
            if runner.worker is not None:
                runner.worker.kill()

    def execute(self) -> RunOutcome:
        by_book: dict[str, list[Cell]] = defaultdict(list)
        for cell in self.plan.cells:
            by_book[cell.playbook.name].append(cell)
        books = [p for p in self.plan.playbooks if p.name in by_book]
        for playbook in books:
            self.policy[playbook.model.id] = self.options.failure_policy or playbook.failure_policy
        jobs = {p.name: self.jobs_for(p, by_book[p.name]) for p in books}
        with self.progress, ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            futures = {
                name: [pool.submit(self.run_job, job) for job in js] for name, js in jobs.items()
            }
            for playbook in books:
                results = [f.result() for f in futures[playbook.name]]
                self.g4(playbook, results)
        for model, halt in self.per_model.items():
            if halt.is_set():
                self.outcome.halted[model] = halt.reason
        if self.everything.is_set() and not self.outcome.interrupted:
            for book in books:
                self.outcome.halted.setdefault(book.model.id, self.everything.reason)
        self.writer.close()
        return self.outcome


def execute(
    playbooks: Sequence[Playbook], options: RunOptions, *, warm: WarmPool | None = None
) -> RunOutcome:
    """Run playbooks (one shard of them, if asked) and stream the evidence.

    SIGINT and SIGTERM stop the workers; what finished stays in the evidence
    and the outcome says it was interrupted.
    """
    plan = build_plan(playbooks, options.shard)
    if options.backends:
        plan = Plan(
            plan.playbooks,
            tuple(c for c in plan.cells if c.backend in options.backends),
            plan.shard,
        )
    run = _Run(plan, options, warm)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, run.interrupt)
    try:
        return run.execute()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
