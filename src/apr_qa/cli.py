"""The `apr-qa` command line: a thin layer over the library.

Every command translates `AprQaError` into one line per problem on stderr and the
documented exit code; Python tracebacks are for bugs only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apr_qa import __version__
from apr_qa.errors import AprQaError, ExitCode, PlaybookError
from apr_qa.playbook.model import Device, FailurePolicy

if TYPE_CHECKING:
    from apr_qa.api import Loaded

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("apr_qa")


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _terminations_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP end a command the way Ctrl-C does (one line, exit 130), not
    silently by the default action (exit 143 or 129). While a run owns its output
    directory, :func:`apr_qa.api.run` catches all three itself and writes the reports."""
    previous = {}
    if threading.current_thread() is threading.main_thread():  # else Python cannot
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _guarded(func: F) -> F:
    """Run a command body, turning our errors and Ctrl-C into exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _terminations_as_interrupts():
                return func(*args, **kwargs)
        except AprQaError as exc:
            for line in exc.lines():
                click.echo(
                    line if isinstance(exc, PlaybookError) else f"apr-qa: error: {line}", err=True
                )
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("apr-qa: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))

    return wrapper  # type: ignore[return-value]


def _configure_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="apr-qa: %(levelname)s: %(message)s"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="apr-qa")
@click.option("-v", "--verbose", count=True, help="More output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output (repeatable).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Qualify language models by trying to break them.

    \b
    Exit codes: 0 ok, 1 a check falsified, 2 usage or playbook error,
    3 environment error (missing backend, model not found), 130 interrupted.
    """
    _configure_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet > 0


_playbooks_arg = click.argument(
    "playbooks", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)


def _model_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse a --model-path that exists but is neither a file nor a directory (/dev/null)."""
    if value is not None and value.exists() and not (value.is_file() or value.is_dir()):
        raise click.BadParameter(
            f"{value} is a special file (device, FIFO or socket), not a model file or directory"
        )
    return value


_model_path_opt = click.option(
    "--model-path",
    type=click.Path(path_type=Path),
    callback=_model_path,
    help="Use this model (directory or file) instead of, or in the absence of, the playbook's.",
)


def _load_all(paths: tuple[Path, ...], model_path: Path | None, *, quiet: bool) -> Loaded:
    """Load every playbook (all problems of all files at once); print the warnings."""
    from apr_qa import api

    loaded = api.load(paths, model_path)
    if not quiet:
        for warning in loaded.warnings:
            click.echo(f"apr-qa: warning: {warning}", err=True)
    return loaded


@cli.command()
@_playbooks_arg
@_model_path_opt
@click.option(
    "--locked",
    "lock_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Refuse playbooks whose hash or locked fields differ from this lock file.",
)
@click.pass_context
@_guarded
def validate(
    ctx: click.Context, playbooks: tuple[Path, ...], model_path: Path | None, lock_file: Path | None
) -> None:
    """Check playbooks against the schema; one file:line:col line per problem."""
    loaded = _load_all(playbooks, model_path, quiet=ctx.obj["quiet"]).playbooks
    if lock_file is not None:
        from apr_qa.lock import check_locked, read_lock

        lock = read_lock(lock_file)
        problems = [p for book in loaded for p in check_locked(book, lock, lock_file)]
        if problems:
            raise PlaybookError(problems)
    if not ctx.obj["quiet"]:
        count = len(loaded)
        click.echo(f"{count} playbook{'s' if count != 1 else ''} valid", err=True)


@cli.command()
@_playbooks_arg
@_model_path_opt
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (streamed).")
@click.option("--shard", "shard_text", metavar="K/N", help="Only the cells of shard K of N.")
@click.pass_context
@_guarded
def plan(
    ctx: click.Context,
    playbooks: tuple[Path, ...],
    model_path: Path | None,
    as_json: bool,
    shard_text: str | None,
) -> None:
    """Expand playbooks into cells and scenarios, with counts."""
    from apr_qa.plan import build_plan, parse_shard
    from apr_qa.planview import render_table, write_json

    shard = parse_shard(shard_text) if shard_text else None
    the_plan = build_plan(_load_all(playbooks, model_path, quiet=ctx.obj["quiet"]).playbooks, shard)
    if as_json:
        write_json(the_plan, sys.stdout)
    else:
        click.echo(render_table(the_plan))


@cli.command()
@_playbooks_arg
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("playbook.lock.yaml"),
    show_default=True,
    help="Lock file to create or update.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="A dotted field to lock (repeatable); default: model.hf_repo, model.formats, "
    "test_matrix, falsification_gates.",
)
@click.pass_context
@_guarded
def lock(
    ctx: click.Context, playbooks: tuple[Path, ...], output: Path, fields: tuple[str, ...]
) -> None:
    """Write sha256 entries for playbooks to a lock file."""
    from apr_qa.lock import DEFAULT_FIELDS, write_lock

    loaded = _load_all(playbooks, None, quiet=ctx.obj["quiet"]).playbooks
    count = write_lock(output, loaded, fields or DEFAULT_FIELDS)
    if not ctx.obj["quiet"]:
        click.echo(f"locked {count} playbook{'s' if count != 1 else ''} in {output}", err=True)


@cli.command()
@_playbooks_arg
@_model_path_opt
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("apr-qa-out"),
    show_default=True,
    help="Directory for evidence.jsonl and the reports.",
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Cells run in parallel (GPU cells share one device one at a time).",
)
@click.option(
    "--failure-policy",
    type=click.Choice(["stop-on-p0", "fail-fast", "collect-all"]),
    help="Override the playbooks' failure policy (default: stop-on-p0).",
)
@click.option("--shard", "shard_text", metavar="K/N", help="Run only the cells of shard K of N.")
@click.option(
    "--backend",
    "backends",
    type=click.Choice(["cpu", "gpu"]),
    multiple=True,
    help="Only cells on this backend (repeatable).",
)
@click.option(
    "--fail-below",
    default="C",
    show_default=True,
    help="Exit 1 when a model grades below this (A+, A, B+, B, C, F).",
)
@click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Allow model code from the checkpoint, for playbooks that also opt in.",
)
@click.option("--no-convert", is_flag=True, help="Do not convert missing GGUF quantizations.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    help="An earlier run (evidence.jsonl, summary.json or directory): checks that regressed "
    "against it are F-REGR-BASE failures (exit 1).",
)
@click.option(
    "--assert-throughput",
    type=float,
    metavar="TOK_S",
    help="Profile every cell; fail (F-PROFILE-CI-001, exit 1) below this many tokens/s.",
)
@click.option(
    "--assert-p99",
    type=float,
    metavar="MS",
    help="Profile every cell; fail (F-PROFILE-CI-002, exit 1) when p99 latency exceeds MS.",
)
@click.option(
    "--assert-p50",
    type=float,
    metavar="MS",
    help="Profile every cell; fail (F-PROFILE-CI-003, exit 1) when p50 latency exceeds MS.",
)
@click.pass_context
@_guarded
def run(
    ctx: click.Context,
    playbooks: tuple[Path, ...],
    model_path: Path | None,
    output: Path,
    workers: int,
    failure_policy: str | None,
    shard_text: str | None,
    backends: tuple[str, ...],
    fail_below: str,
    trust_remote_code: bool,
    no_convert: bool,
    baseline: Path | None,
    assert_throughput: float | None,
    assert_p99: float | None,
    assert_p50: float | None,
) -> None:
    """Run playbooks on real runtimes; write evidence and reports to --output.

    \b
    Exit codes: 0 every model held its gateways and reached --fail-below,
    1 otherwise, 2 bad playbook or usage, 3 model or runtime missing,
    130 interrupted (evidence and reports are still written for what finished).
    """
    from apr_qa import api
    from apr_qa.plan import parse_shard
    from apr_qa.report.terminal import verdict_text

    quiet = ctx.obj["quiet"]
    config = api.RunConfig(
        output_dir=output,
        workers=workers,
        failure_policy=FailurePolicy(failure_policy) if failure_policy else None,
        shard=parse_shard(shard_text) if shard_text else None,
        backends=tuple(Device(b) for b in backends),
        fail_below=fail_below,
        trust_remote_code=trust_remote_code,
        convert_missing=not no_convert,
        model_path=model_path,
        progress=sys.stderr.isatty() and not quiet,
        baseline=baseline,
        profile_assertions={
            key: value
            for key, value in (
                ("min_throughput", assert_throughput),
                ("max_p99_ms", assert_p99),
                ("max_p50_ms", assert_p50),
            )
            if value is not None
        },
    )
    from apr_qa.report import check_grade

    check_grade(fail_below)  # a bad --fail-below is a usage error before anything runs
    loaded = _load_all(playbooks, model_path, quiet=quiet)
    for warning in api.trust_warnings(loaded.playbooks, config) if not quiet else ():
        click.echo(f"apr-qa: warning: {warning}", err=True)
    result = api.run(loaded, config)
    if result.report is None:
        where = f"shard {config.shard}" if config.shard else "the selected backends"
        click.echo(f"apr-qa: nothing to run in {where}; no report written", err=True)
        sys.exit(result.exit_code)
    if not quiet:
        for model, reason in result.outcome.halted.items():
            click.echo(f"apr-qa: {model}: halted: {reason}", err=True)
        late = result.outcome.interrupted
        if late is not None and not result.outcome.halted:
            click.echo(
                f"apr-qa: interrupted by {late.name} after the last check; the reports are complete",
                err=True,
            )
        click.echo(
            verdict_text(
                result.report.run,
                fail_below=result.report.fail_below,
                reports=result.report.paths,
                color=sys.stdout.isatty(),
            )
        )
    sys.exit(result.exit_code)


@cli.command()
@click.argument("playbook", type=click.Path(path_type=Path, dir_okay=False))
@_model_path_opt
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("golden.jsonl"),
    show_default=True,
    help="Golden file to write.",
)
@_guarded
def golden(playbook: Path, model_path: Path | None, output: Path) -> None:
    """Record the reference artifact's greedy answers to PLAYBOOK's explicit scenarios.

    The reference is the safetensors checkpoint on transformers on the CPU. Name the
    file in the playbook as `golden: {path: ..., sha256: ...}` (the hash is printed).
    """
    from apr_qa import api

    count, digest = api.golden(playbook, output, model_path)
    click.echo(f"wrote {count} golden entries to {output}")
    click.echo(f"golden: {{path: {output}, sha256: {digest}}}")


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--quant",
    default="f16",
    show_default=True,
    help="f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, or a K-quant (q4_k_m, q5_k_m, q6_k, ...).",
)
@_guarded
def convert(src: Path, dst: Path, quant: str) -> None:
    """Convert a Hugging Face checkpoint SRC to GGUF file DST (reference converter)."""
    from apr_qa.errors import EnvironmentProblem
    from apr_qa.models.convert import convert as run_convert

    try:
        out = run_convert(src, dst, quant)
    except OSError as exc:  # a full disk, a read-only directory: the machine, not the input
        where = exc.filename or dst
        raise EnvironmentProblem(f"{where}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The reference JSON to write.",
)
@_guarded
def fingerprint(artifact: Path, output: Path) -> None:
    """Write ARTIFACT's per-tensor statistics as a reference JSON.

    A later run compares with it when the playbook names it as
    differential_tests.validate_stats.reference (docs/gates.md).

    \b
    Exit codes: 0 written, 2 not a model file, 3 missing or unwritable.
    """
    from apr_qa import api
    from apr_qa.errors import EnvironmentProblem

    if not artifact.exists():  # a missing model, as `run` and `diff` say: exit 3
        raise EnvironmentProblem(f"{artifact}: no such file or directory")
    try:
        count = api.fingerprint(artifact, output)
    except OSError as exc:  # the output cannot be written: the machine, not the input
        raise EnvironmentProblem(f"{exc.filename or output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {count} tensor fingerprints to {output}")


@cli.command()
@click.argument("summaries", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--readme",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Regenerate the table between the CERTIFICATION_TABLE markers of this README.",
)
@click.option(
    "--registry",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("docs/certifications/models.csv"),
    show_default=True,
    help="The model registry (CSV) to update.",
)
@click.option(
    "--badges",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write one shields.io endpoint badge (JSON) per model into this directory.",
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a file is out of date.")
@click.option(
    "--append", is_flag=True, help="Add a certification section to a README without markers."
)
@click.pass_context
@_guarded
def certify(
    ctx: click.Context,
    summaries: tuple[Path, ...],
    readme: Path | None,
    registry: Path,
    badges: Path | None,
    check: bool,
    append: bool,
) -> None:
    """Certify models from SUMMARY.json files: registry, README table, badges.

    \b
    Exit codes: 0 done (or, with --check, everything up to date),
    1 with --check when a file is out of date, 2 bad input.
    """
    from apr_qa import api

    result = api.certify(
        summaries, registry=registry, readme=readme, badges=badges, check=check, append=append
    )
    quiet = ctx.obj["quiet"]
    for line in result.plan.kept if not quiet else ():
        click.echo(f"apr-qa: kept: {line}", err=True)
    if check:
        for path in result.out_of_date:
            click.echo(f"apr-qa: out of date: {path}", err=True)
        if not quiet and not result.out_of_date:
            click.echo("apr-qa: certification up to date", err=True)
    elif not quiet:
        what = ", ".join(str(p) for p in result.written) or "nothing changed"
        click.echo(f"apr-qa: certified {result.plan.rows} row(s): {what}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--prompt", "prompts", multiple=True, help="A prompt to compare on (repeatable).")
@_guarded
def diff(a: Path, b: Path, as_json: bool, prompts: tuple[str, ...]) -> None:
    """Compare a safetensors checkpoint with a GGUF file: tensors, tokenizer, logits.

    Exit 0: the same model within tolerance; 1: a difference beyond it; 2: usage;
    3: an artifact cannot be loaded.
    """
    import json

    from apr_qa.diff import DEFAULT_PROMPTS, diff_artifacts, render_table

    report = diff_artifacts(a, b, prompts or DEFAULT_PROMPTS)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render_table(report))
    sys.exit(report.exit_code)


@cli.command()
@_guarded
def action() -> None:
    """Run as the GitHub Action: inputs from INPUT_* variables, workflow commands out.

    \b
    The entrypoint of the apr-qa Docker images (see action.yml and the README):
    job summary, outputs, annotations, PR comment and README commit.
    """
    import os

    from apr_qa.action.main import run_action

    sys.exit(run_action(os.environ, sys.stdout))


from apr_qa.library.command import init_command, templates_command  # noqa: E402
from apr_qa.report.command import report_command  # noqa: E402
from apr_qa.report.compare_command import compare_command  # noqa: E402

cli.add_command(report_command)
cli.add_command(compare_command)
cli.add_command(init_command)
cli.add_command(templates_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="apr-qa")


if __name__ == "__main__":  # pragma: no cover
    main()
