"""The library's face: load playbooks, run them, re-render reports from evidence.

The command line (:mod:`apr_qa.cli`) and the GitHub Action are thin front ends
over these calls; anything either can do, a Python caller can do::

    from apr_qa import api

    result = api.run([Path("playbook.yaml")], api.RunConfig(output_dir=Path("out")))
    print(result.report.run.models[0].mqs, result.exit_code)

Errors in what was asked (a bad playbook, an unusable output directory, a
missing model) raise :class:`apr_qa.errors.AprQaError` subclasses carrying their
exit code; a model failing is evidence in the result, never an exception.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apr_qa.errors import ExitCode, PlaybookError, Problem, UsageError
from apr_qa.playbook.model import Device, FailurePolicy

if TYPE_CHECKING:
    from datetime import datetime

    from apr_qa.baseline import PriorRun
    from apr_qa.certify import CertifyPlan
    from apr_qa.compare import Comparison
    from apr_qa.execute.supervisor import RunOutcome
    from apr_qa.library.write import Written
    from apr_qa.plan import Shard
    from apr_qa.playbook import Playbook
    from apr_qa.report import RenderResult

__all__ = [
    "CertifyResult",
    "CompareResult",
    "Loaded",
    "ReportResult",
    "RunConfig",
    "RunResult",
    "certify",
    "compare",
    "fingerprint",
    "golden",
    "init",
    "load",
    "report",
    "run",
    "trust_warnings",
]

LOCK_NAME = ".apr-qa.lock"


@dataclass(frozen=True)
class Loaded:
    """Playbooks loaded and validated, with their warnings (deduplicated, one line each)."""

    playbooks: tuple[Playbook, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class RunConfig:
    """How to run: where to write, how wide, what to override from the playbooks."""

    output_dir: Path = Path("apr-qa-out")
    workers: int = 1
    failure_policy: FailurePolicy | None = None
    shard: Shard | None = None
    backends: tuple[Device, ...] = ()
    fail_below: str = "C"
    trust_remote_code: bool = False
    convert_missing: bool = True
    model_path: Path | None = None
    progress: bool = False
    warm_start: bool = True
    """Start the first workers as soon as the playbooks are loaded (overlaps imports)."""
    baseline: Path | None = None
    """An earlier run (evidence.jsonl, summary.json or directory) to compare with:
    overrides every playbook's ``regression.baseline`` (docs/regression.md)."""
    profile_assertions: Mapping[str, float] = field(default_factory=dict)
    """``min_throughput``, ``max_p50_ms``, ``max_p99_ms`` from the command line: they
    enable every playbook's ``profile_ci`` and override its assertions of the same kind."""
    backend_override: str | None = None
    """Run every cell on this backend kind instead of its format's (tests: ``fake``)."""


@dataclass(frozen=True)
class RunResult:
    """A finished (or interrupted) run: its evidence, reports and exit code."""

    playbooks: tuple[Playbook, ...]
    outcome: RunOutcome
    report: RenderResult | None
    """None when there was nothing to run (an empty shard)."""
    warnings: tuple[str, ...] = field(default=())

    @property
    def nothing_to_run(self) -> bool:
        """The shard or backend selection left no cell (not a failure)."""
        return self.outcome.cells == 0

    @property
    def exit_code(self) -> int:
        """130 when interrupted; 0 with nothing to run; else the reports' verdict."""
        if self.outcome.interrupted is not None:
            return int(ExitCode.INTERRUPTED)
        if self.report is None:
            return int(ExitCode.OK)
        return self.report.exit_code


@dataclass(frozen=True)
class ReportResult:
    """Reports re-rendered from evidence files, with what reading and merging warned."""

    report: RenderResult
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0 when every model passed, 1 otherwise."""
        return self.report.exit_code


def load(paths: Sequence[Path], model_path: Path | None = None) -> Loaded:
    """Load every playbook, reporting all problems of all files at once (PlaybookError)."""
    from apr_qa.playbook import load_playbook

    loaded: list[Playbook] = []
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    for path in paths:
        try:
            playbook = load_playbook(path, model_path=model_path)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        loaded.append(playbook)
        for warning in playbook.warnings:
            counts[warning] = counts.get(warning, 0) + 1
    if problems:
        raise PlaybookError(problems)
    warnings = []
    for warning, count in counts.items():
        where = f" (in {count} files)" if count > 1 else ""
        if count == 1 and len(paths) == 1:
            where = f" ({loaded[0].path})"
        warnings.append(f"{warning}{where}")
    return Loaded(tuple(loaded), tuple(warnings))


@contextlib.contextmanager
def _owned(output_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output directory for the whole run: a second run
    into the same directory is refused before it loads anything, instead of the two
    interleaving (or replacing) each other's evidence."""
    from apr_qa.report import check_report_paths

    check_report_paths(output_dir)
    lock_path = output_dir / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"{lock_path}: cannot create the run lock ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise UsageError(
                f"{output_dir}: another apr-qa run (pid {holder}) is writing there; "
                "wait for it or choose another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def trust_warnings(playbooks: Sequence[Playbook], config: RunConfig) -> list[str]:
    """One line per playbook whose trust_remote_code opt-in the caller did not match."""
    return [
        f"{book.path}: trust_remote_code refused "
        "(the playbook opts in; pass --trust-remote-code to agree)"
        for book in playbooks
        if book.model.trust_remote_code and not config.trust_remote_code
    ]


def run(playbooks: Loaded | Sequence[Path], config: RunConfig) -> RunResult:
    """Load (unless given :func:`load`'s result), run and report: evidence streamed to
    ``output_dir/evidence.jsonl`` (a new run replaces the last one's there), then every
    report beside it.

    From the output directory's lock to the last report, SIGINT, SIGTERM and SIGHUP
    (in the main thread) stop the run instead of the process: what finished is
    reported, marked interrupted, and the exit code is 130. One that arrives after
    the last check, while the reports are written, leaves them complete and still
    makes the exit code 130, so a script that was interrupted stops.
    """
    from apr_qa.backends.threads import per_worker
    from apr_qa.execute import RunOptions, execute
    from apr_qa.execute.interrupts import Interrupts
    from apr_qa.execute.warm import WarmPool
    from apr_qa.report import check_grade, render_reports

    grade = check_grade(config.fail_below)
    loaded = playbooks if isinstance(playbooks, Loaded) else load(playbooks, config.model_path)
    if config.baseline is not None:
        loaded = _with_baseline(loaded, config.baseline)
    if config.profile_assertions:
        loaded = _with_profile(loaded, config.profile_assertions)
    _check_golden(loaded.playbooks)
    with contextlib.ExitStack() as stack:
        interrupts = stack.enter_context(Interrupts().installed())
        stack.enter_context(_owned(config.output_dir))
        # Start the first workers now: their runtime imports overlap the rest of our start-up.
        warm = WarmPool(per_worker(config.workers))
        if config.warm_start and config.shard is None and config.backend_override is None:
            warm = WarmPool.for_playbooks(loaded.playbooks, config.workers, config.backends or None)
        stack.callback(warm.close)  # the engine closes it too; this covers its failing early
        options = RunOptions(
            output_dir=config.output_dir,
            workers=config.workers,
            failure_policy=config.failure_policy,
            backends=tuple(config.backends) or None,
            shard=config.shard,
            trust_remote_code=config.trust_remote_code,
            convert_missing=config.convert_missing,
            progress=config.progress,
            backend_override=config.backend_override,
        )
        outcome = execute(loaded.playbooks, options, warm=warm, interrupts=interrupts)
        warnings = (*loaded.warnings, *trust_warnings(loaded.playbooks, config))
        rendered = None
        if outcome.cells:
            rendered = render_reports(
                outcome.records, config.output_dir, fail_below=grade, facts=outcome.facts
            )
        if outcome.interrupted is None:
            outcome.interrupted = interrupts.received  # after the last check
    return RunResult(loaded.playbooks, outcome, rendered, warnings)


def _check_golden(playbooks: Sequence[Playbook]) -> None:
    """Refuse, before anything runs, a golden file that does not match its hash or was
    recorded from another model (a usage error: the comparison would mean nothing)."""
    from apr_qa.checks.golden import golden_of
    from apr_qa.golden import read_golden

    for book in playbooks:
        named = golden_of(book)
        if named is not None:
            models = tuple(m for m in (book.model.id, book.model.stands_in_for) if m)
            read_golden(named[0], sha256=named[1], models=models)


def golden(playbook: Path, output: Path, model_path: Path | None = None) -> tuple[int, str]:
    """Record the playbook's golden outputs from its reference artifact into ``output``;
    returns the number of entries and the file's sha256 (for ``golden.sha256``)."""
    from apr_qa.golden import record_golden, write_golden

    loaded = load([playbook], model_path)
    recorded = record_golden(loaded.playbooks[0])
    return len(recorded.entries), write_golden(output, recorded)


def init(
    model: str, output: Path, template: str | None = None, *, record_golden: bool = True
) -> Written:
    """Write a playbook for ``model`` (a checkpoint directory or a Hugging Face repo id) to
    ``output``: template and thresholds by size, scenarios in the model's prompt form,
    golden outputs for a template that has them; checked to load and plan
    (docs/library.md)."""
    from apr_qa.library.write import write_playbook

    return write_playbook(model, output, template, record_golden=record_golden)


def fingerprint(artifact: Path, output: Path) -> int:
    """Write ``artifact``'s tensor fingerprint to ``output`` (a reference for
    ``differential_tests.validate_stats.reference``); returns the tensor count.

    Raises :class:`~apr_qa.errors.UsageError` for a file the readers refuse.
    """
    from apr_qa.models.fingerprint import fingerprint as take
    from apr_qa.models.fingerprint import write_fingerprint

    taken = take(artifact)
    write_fingerprint(taken, output)
    return len(taken.tensors)


def _with_section(
    loaded: Loaded, name: str, update: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> Loaded:
    """Every playbook with its section ``name`` replaced by ``update(section)``."""
    import dataclasses

    from apr_qa.playbook.model import frozen_map

    books = []
    for book in loaded.playbooks:
        section = update(book.sections.get(name) or {})
        sections = frozen_map({**book.sections, name: section})
        books.append(dataclasses.replace(book, sections=sections))
    return Loaded(tuple(books), loaded.warnings)


def _with_baseline(loaded: Loaded, baseline: Path) -> Loaded:
    """Every playbook compared with ``baseline``; an unreadable one is refused before
    anything runs (a usage error, not a skipped check nobody asked for)."""
    from apr_qa.baseline import read_run

    read_run(baseline)
    where = str(baseline.resolve())
    return _with_section(loaded, "regression", lambda section: {**section, "baseline": where})


def _with_profile(loaded: Loaded, assertions: Mapping[str, float]) -> Loaded:
    """Every playbook profiled, with the command line's assertions over its own
    (a throughput floor replaces the per-device floors too)."""

    def update(section: Mapping[str, Any]) -> Mapping[str, Any]:
        mine = dict(section.get("assertions") or {})
        if "min_throughput" in assertions:
            mine.pop("min_throughput_cpu", None)
            mine.pop("min_throughput_gpu", None)
        return {**section, "enabled": True, "assertions": {**mine, **assertions}}

    return _with_section(loaded, "profile_ci", update)


@dataclass(frozen=True)
class CompareResult:
    """Two runs compared by check key: the comparison and what reading them warned."""

    before: PriorRun
    after: PriorRun
    comparison: Comparison
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0 when no check regressed, 1 otherwise."""
        return int(ExitCode.FALSIFIED if self.comparison.regressed else ExitCode.OK)


def compare(before: Path, after: Path) -> CompareResult:
    """Set run ``after`` beside run ``before`` (each an evidence.jsonl, a summary.json or
    a run directory, shards merged) by stable check key."""
    from apr_qa.baseline import read_run
    from apr_qa.compare import compare_records

    was, now = read_run(before), read_run(after)
    if now.records is None:
        raise UsageError(f"{after}: no evidence to compare (a summary.json alone keeps no checks)")
    comparison = compare_records(was.records, now.records, before_views=was.views)
    return CompareResult(was, now, comparison, (*was.warnings, *now.warnings))


def report(evidence: Sequence[Path], output_dir: Path, *, fail_below: str = "C") -> ReportResult:
    """Score evidence files (shards and runs merge by check key) and write the reports."""
    from apr_qa.evidence import read_evidence
    from apr_qa.merge import merge
    from apr_qa.report import check_grade, render_reports

    grade = check_grade(fail_below)
    read = read_evidence(evidence)
    merged = merge(read.records)
    warnings = (*read.warnings, *merged.warnings)
    with _owned(output_dir):  # not into a directory a run is still writing
        rendered = render_reports(
            merged.records, output_dir, fail_below=grade, warnings=warnings, facts=read.facts
        )
    return ReportResult(rendered, tuple(warnings))


@dataclass(frozen=True)
class CertifyResult:
    """What certification changed (or, checking, would change)."""

    plan: CertifyPlan
    written: tuple[Path, ...]
    check: bool

    @property
    def out_of_date(self) -> tuple[Path, ...]:
        """Files whose bytes differ from what certification gives (checking: none written)."""
        return tuple(self.plan.files)

    @property
    def exit_code(self) -> int:
        """Checking: 1 when a file is out of date; else 0."""
        if self.check and self.plan.files:
            return int(ExitCode.FALSIFIED)
        return int(ExitCode.OK)


def certify(
    summaries: Sequence[Path],
    *,
    registry: Path | None = None,
    readme: Path | None = None,
    badges: Path | None = None,
    check: bool = False,
    append: bool = False,
    now: datetime | None = None,
) -> CertifyResult:
    """Update the model registry from summary.json files, then regenerate the README
    block between its markers and, with ``badges``, one endpoint badge per model.

    Idempotent: a file is written only when its bytes change. ``check`` writes
    nothing and says which files are out of date (exit code 1).
    """
    from apr_qa.certify import DEFAULT_REGISTRY, certify_files, plan_certification

    plan = plan_certification(
        summaries,
        registry=registry or DEFAULT_REGISTRY,
        readme=readme,
        badges_dir=badges,
        append=append,
        now=now,
    )
    written = () if check else certify_files(plan)
    return CertifyResult(plan, written, check)
