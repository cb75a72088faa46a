"""The supervisor: resolve artifacts, run the registered checks stage by stage, run
cells in workers, apply the failure policy, and stream every record to
``evidence.jsonl``.

Stages (docs/architecture.md): artifact checks once per artifact, model checks
once per model, cells (with their cell-stage checks) in a thread pool, then
evidence checks over each model's records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from apr_qa.backends.threads import per_worker
from apr_qa.checks import Artifact, Stage, registered
from apr_qa.checks.finding import Finding
from apr_qa.evidence import EvidenceWriter, HaltKind, Outcome, Record
from apr_qa.execute.cell import CellJob, CellRunner
from apr_qa.execute.client import Worker
from apr_qa.execute.command_client import command_spawner
from apr_qa.execute.halt import Halt, Stop
from apr_qa.execute.interrupts import INTERRUPT_SIGNALS, Interrupts
from apr_qa.execute.progress import Progress
from apr_qa.execute.records import CellRef, RecordFactory
from apr_qa.execute.server_client import ServerSpawner, record_shutdown
from apr_qa.execute.warm import BACKEND_OF_FORMAT, WarmPool
from apr_qa.gates import Severity
from apr_qa.plan import Cell, Plan, Shard, build_plan
from apr_qa.playbook.model import FailurePolicy, Playbook

if TYPE_CHECKING:
    from apr_qa.facts import ModelFacts
    from apr_qa.models.sources import Resolution

__all__ = ["INTERRUPT_SIGNALS", "Interrupts", "RunOptions", "RunOutcome", "execute"]

_FAILED = (Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED)


@dataclass(frozen=True)
class RunOptions:
    """How to run: where evidence goes, parallelism, overrides from the command line."""

    output_dir: Path
    workers: int = 1
    failure_policy: FailurePolicy | None = None
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
    interrupted: signal.Signals | None = None
    halted: dict[str, str] = field(default_factory=dict)
    cells: int = 0
    facts: list[ModelFacts] = field(default_factory=list)
    """Each model's facts (family, architecture, parameters), as written to the evidence."""


class _Run:
    def __init__(self, plan: Plan, options: RunOptions, warm: WarmPool | None = None) -> None:
        self.plan = plan
        self.options = options
        run_id = uuid.uuid4().hex[:12]
        self.factory = RecordFactory(run_id, str(plan.shard) if plan.shard else None)
        self.writer = EvidenceWriter(options.output_dir / "evidence.jsonl")
        self.lock = threading.Lock()
        self.gpu_lock = threading.Lock()
        self.everything = Halt()
        self.per_model: dict[str, Halt] = defaultdict(Halt)
        self.policy: dict[str, FailurePolicy] = {}
        self.outcome = RunOutcome(self.writer.path, cells=len(plan.cells))
        self.progress = Progress(
            enabled=options.progress, total=plan.test_count, cells=len(plan.cells)
        )
        self.runners: set[CellRunner] = set()
        self.warm = warm if warm is not None else WarmPool(per_worker(options.workers))

    # -- evidence and policy --------------------------------------------------------------

    def emit(self, record: Record) -> None:
        with self.lock:
            self.writer.write(record)
            self.outcome.records.append(record)
        if record.outcome not in _FAILED:
            return
        self.progress.failure()
        cause = f"after {record.gate} {record.outcome} in {record.cell}"
        policy = self.policy.get(record.model, FailurePolicy.STOP_ON_P0)
        if policy is FailurePolicy.FAIL_FAST:
            self.everything.set(Stop(HaltKind.FAIL_FAST, f"fail-fast {cause}"))
        elif policy is FailurePolicy.STOP_ON_P0 and record.severity is Severity.P0:
            self.per_model[record.model].set(Stop(HaltKind.STOP_ON_P0, f"stop-on-p0 {cause}"))

    def stop_for(self, model: str) -> Stop | None:
        if self.everything.is_set():
            return self.everything.stop
        halt = self.per_model[model]
        return halt.stop if halt.is_set() else None

    def record(self, playbook: Playbook, finding: Finding, ref: CellRef) -> None:
        self.emit(
            self.factory.make(
                finding.gate,
                finding.outcome,
                finding.reason,
                ref,
                playbook=playbook,
                expected=finding.expected,
                metrics=finding.metrics,
            )
        )

    # -- preparation: artifacts and the artifact and model stages ---------------------------

    def jobs_for(self, playbook: Playbook, cells: Sequence[Cell]) -> list[CellJob]:
        """Resolve artifacts, run the artifact and model stages, turn cells into jobs."""
        from apr_qa.checks.converted import conversion_findings
        from apr_qa.models.sources import ModelRef, resolve
        from apr_qa.serve.spec import serve_spec

        model = playbook.model
        trust = model.trust_remote_code and self.options.trust_remote_code
        remote = serve_spec(playbook.sections).url is not None
        formats = sorted(
            {
                c.format
                for c in cells
                if c.format != "apr" and not (remote and c.modality == "serve")
            }
        )
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
            for quant, finding in conversion_findings(resolution):
                self.record(playbook, finding, CellRef(model.id, "gguf", quant))
        jobs: list[CellJob] = []
        artifacts: dict[str, Artifact] = {}
        for cell in cells:
            for job, origin in self._cell_jobs(playbook, cell, resolution, trust):
                # A server elsewhere has no artifact here; an apr file is opaque to apr-qa.
                opaque = origin in ("remote", "runtime")
                if job.skip_reason is None and not opaque and job.path not in artifacts:
                    at = CellRef(job.cell.model, job.cell.format, job.cell.quantization)
                    artifact = Artifact(playbook, at, Path(job.path), origin)
                    artifacts[job.path] = artifact
                    self.artifact_stage(artifact)
                jobs.append(job)
        if self.options.backend_override is None:
            self.model_facts(playbook, tuple(artifacts.values()))
            for check in registered(Stage.MODEL):
                for finding in check.check(playbook, tuple(artifacts.values())):
                    self.record(playbook, finding, CellRef(model.id))
        return jobs

    def model_facts(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> None:
        """Count the model's facts once, from its safetensors checkpoint when it has one
        (the reference), else its first GGUF; nothing is written when none can be read."""
        from apr_qa.evidence import now_utc
        from apr_qa.facts import count_facts

        def preference(a: Artifact) -> tuple[bool, str]:
            return (a.ref.format != "safetensors", str(a.ref))

        for artifact in sorted(artifacts, key=preference):
            where = f"{artifact.ref.format}.{artifact.ref.quantization}"
            facts = count_facts(
                playbook.model.id, artifact.path, where, family=playbook.model.family
            )
            if facts is None:
                continue
            stamped = dataclasses.replace(facts, run_id=self.factory.run_id, timestamp=now_utc())
            with self.lock:
                self.writer.write_facts(stamped)
                self.outcome.facts.append(stamped)
            return

    def artifact_stage(self, artifact: Artifact) -> None:
        """Every artifact-stage check on one artifact, once."""
        if self.options.backend_override is not None:
            return  # a fake model's script is no artifact to inspect
        for check in registered(Stage.ARTIFACT):
            for finding in check.check(artifact):
                self.record(artifact.playbook, finding, artifact.ref)

    def _cell_jobs(
        self, playbook: Playbook, cell: Cell, resolution: Resolution | None, trust: bool
    ) -> Iterator[tuple[CellJob, str]]:
        from apr_qa.backends.device import gpu_unavailable_reason
        from apr_qa.runtimes import apr_artifact, runtime_skip, runtime_specs
        from apr_qa.serve.launch import missing_runtime
        from apr_qa.serve.spec import serve_spec

        scenarios = cell.scenarios()
        kind = self.options.backend_override or BACKEND_OF_FORMAT.get(cell.format, "-")

        def job(quant: str, path: str = "-", skip: str | None = None) -> CellJob:
            ref = CellRef(playbook.model.id, cell.format, quant, cell.backend, cell.modality)
            return CellJob(
                playbook=playbook,
                cell=ref,
                backend_kind=kind if skip is None else "-",
                path=path,
                device=cell.backend,
                scenarios=list(scenarios) if skip is None else list(cell.scenarios()),
                trust_remote_code=trust,
                skip_reason=skip,
            )

        command = runtime_specs(playbook.sections).get(cell.format)
        if cell.modality != "serve" and (command is not None or cell.format == "apr"):
            # A command runtime replaces the in-process backend of its format (docs/runtimes.md).
            kind = "command"
            if (skip := runtime_skip(command, cell.format, cell.modality)) is not None:
                yield job(cell.quantization, skip=f"skipped: {skip}"), "-"
                return
            if cell.format == "apr":
                path = apr_artifact(playbook.model) or playbook.model.path or "-"
                yield job(cell.quantization, str(path)), "runtime"
                return
        elif cell.format == "apr":
            reason = "skipped: apr-qa starts no server for format apr (runtimes.apr runs run/chat)"
            yield job(cell.quantization, skip=reason), "-"
            return
        if cell.modality == "serve":
            kind = "server"
            spec = serve_spec(playbook.sections)
            if self.options.backend_override is None and (
                absent := missing_runtime(spec, cell.format)
            ):
                yield job(cell.quantization, skip=f"skipped: {absent}"), "-"
                return
            if spec.url is not None:
                # A server running elsewhere: no artifact here; the cell is its label.
                yield job(cell.quantization, "-"), "remote"
                return
        runtime = BACKEND_OF_FORMAT.get(cell.format, "-") if kind == "server" else kind
        if cell.backend == "gpu" and kind != "command" and (why := gpu_unavailable_reason(runtime)):
            yield job(cell.quantization, skip=f"skipped: gpu requested but unusable: {why}"), "-"
            return
        if resolution is None:  # the fake backend: the model path is its script
            yield job(cell.quantization, str(playbook.model.path)), "local"
            return
        artifacts = [
            a
            for a in resolution.artifacts
            if a.format == cell.format
            and (cell.format != "gguf" or cell.quantization in ("auto", a.quantization))
        ]
        if artifacts:
            for artifact in artifacts:
                yield job(artifact.quantization, str(artifact.path)), artifact.origin
            return
        missing = [
            m
            for m in resolution.missing
            if m.format == cell.format
            and (cell.format != "gguf" or m.quantization == cell.quantization)
        ]
        why = missing[0].why if missing else "not-found"
        reason = missing[0].reason if missing else f"no {cell.format} {cell.quantization} found"
        if why == "conversion-failed":
            skip = "not run: the GGUF could not be produced (see G0-FORMAT-GGUF-001)"
        elif why == "conversion-disabled":
            skip = f"skipped: {reason}"
        else:
            ref = job(cell.quantization).cell
            self.record(
                playbook, Finding("G1-LOAD-001", False, f"{ref} cannot load: {reason}"), ref
            )
            skip = "not run: the artifact is missing"
        yield job(cell.quantization, skip=skip), "-"

    # -- execution ------------------------------------------------------------------------

    def run_job(self, job: CellJob) -> None:
        model = job.cell.model
        if (stop := self.stop_for(model)) is not None:
            runner = CellRunner(job, self.factory, self.emit, lambda: stop)
            runner.skip_rest(job.scenarios, f"not run: {stop.reason}", stop.kind)
            self.progress.cell_done()
            return
        servers = self._server_spawner(job)
        spawn: Callable[[str], Worker] = self.warm.take
        if servers is not None:
            spawn = servers
        elif job.backend_kind == "command" and not job.skip_reason:
            spawn = command_spawner(job)
        runner = CellRunner(
            job,
            self.factory,
            self.emit,
            lambda: self.stop_for(model),
            self.progress.advance,
            spawn=spawn,
        )
        with self.lock:
            self.runners.add(runner)
        try:
            with (
                self.gpu_lock
                if job.device == "gpu" and not job.skip_reason
                else contextlib.nullcontext()
            ):
                runner.run()
        finally:
            with self.lock:
                self.runners.discard(runner)
            self.progress.cell_done()
        if servers is not None and servers.last is not None:
            record_shutdown(runner, servers.last)

    def _server_spawner(self, job: CellJob) -> ServerSpawner | None:
        """A serve cell's workers are servers (:mod:`apr_qa.execute.server_client`)."""
        if job.cell.modality != "serve" or job.skip_reason:
            return None
        from apr_qa.serve.spec import serve_spec

        spec = serve_spec(job.playbook.sections)
        fmt = job.cell.format or "-"
        return ServerSpawner(spec, fmt, job.path, job.device, self.options.backend_override)

    def evidence_stage(self, playbook: Playbook) -> None:
        """Evidence-stage checks over the model's records (an interrupted run's are
        partial, so those checks are skipped and say so)."""
        model = playbook.model.id
        ref = CellRef(model)
        stop = self.everything.stop if self.outcome.interrupted is not None else None
        for check in registered(Stage.EVIDENCE):
            # Taken again for each check: a later check (regression against a baseline)
            # sees the verdicts of the earlier ones (G4), as the reports will.
            with self.lock:
                mine = [r for r in self.outcome.records if r.model == model]
            if stop is not None:
                for gate in check.gates if check.applies(playbook) else ():
                    self.emit(
                        self.factory.make(
                            gate,
                            Outcome.SKIPPED,
                            f"not decided: {stop.reason}; the evidence is partial",
                            ref,
                            playbook=playbook,
                            halted=HaltKind.INTERRUPTED,
                        )
                    )
                continue
            for finding in check.check(mine, playbook):
                self.record(playbook, finding, ref)

    def interrupt(self, first: signal.Signals) -> None:
        """Called from the signal handler (:class:`Interrupts`): sets state and kills
        worker process groups; no lock, no I/O, so a second or third signal arriving
        inside it is harmless."""
        if self.outcome.interrupted is None:
            self.outcome.interrupted = first
        self.everything.set(Stop(HaltKind.INTERRUPTED, f"interrupted by {first.name}"))
        for runner in self.runners.copy():
            worker = runner.worker
            if worker is not None and worker.pid is not None:
                with contextlib.suppress(OSError):
                    os.killpg(worker.pid, signal.SIGKILL)

    def execute(self) -> RunOutcome:
        by_book: dict[str, list[Cell]] = defaultdict(list)
        for cell in self.plan.cells:
            by_book[cell.playbook.name].append(cell)
        books = [p for p in self.plan.playbooks if p.name in by_book]
        for playbook in books:
            self.policy[playbook.model.id] = FailurePolicy(
                self.options.failure_policy or playbook.failure_policy
            )
        try:
            with self.progress, ThreadPoolExecutor(max(1, self.options.workers)) as pool:
                futures = {}
                for book in books:
                    if self.everything.is_set():
                        jobs = self._stopped_jobs(book, by_book[book.name])
                    else:
                        jobs = self.jobs_for(book, by_book[book.name])
                    futures[book.name] = [pool.submit(self.run_job, job) for job in jobs]
                for book in books:
                    for future in futures[book.name]:
                        future.result()
                    self.evidence_stage(book)
        finally:
            self.writer.close()
        for model, halt in self.per_model.items():
            if halt.stop is not None:
                self.outcome.halted[model] = halt.stop.reason
        if self.everything.stop is not None:
            for book in books:
                self.outcome.halted.setdefault(book.model.id, self.everything.stop.reason)
        return self.outcome

    def _stopped_jobs(self, playbook: Playbook, cells: Sequence[Cell]) -> list[CellJob]:
        """Jobs for cells of a playbook reached after the run stopped: all skipped."""
        return [
            CellJob(
                playbook=playbook,
                cell=CellRef(playbook.model.id, c.format, c.quantization, c.backend, c.modality),
                backend_kind="-",
                path="-",
                device=c.backend,
                scenarios=list(c.scenarios()),
            )
            for c in cells
        ]


def execute(
    playbooks: Sequence[Playbook],
    options: RunOptions,
    *,
    warm: WarmPool | None = None,
    interrupts: Interrupts | None = None,
) -> RunOutcome:
    """Run playbooks (one shard of them, if asked) and stream the evidence.

    SIGINT, SIGTERM and SIGHUP stop the workers at once (repeated signals
    included); what finished stays in the evidence and the outcome says which
    signal interrupted the run. A caller that goes on working after the engine
    (writing reports) passes ``interrupts`` it has installed itself, so that a
    signal after this returns is caught too; one received before this starts
    leaves every check skipped as interrupted.
    """
    plan = build_plan(playbooks, options.shard)
    if options.backends:
        plan = Plan(
            plan.playbooks,
            tuple(c for c in plan.cells if c.backend in options.backends),
            plan.shard,
        )
    run = _Run(plan, options, warm)
    with contextlib.ExitStack() as stack:
        if interrupts is None:
            interrupts = stack.enter_context(Interrupts().installed())
        stack.enter_context(interrupts.attached(run.interrupt))
        stack.callback(run.warm.close)
        return run.execute()
