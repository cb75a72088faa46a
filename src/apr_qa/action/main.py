"""``apr-qa action``: the GitHub Action's entrypoint, over :mod:`apr_qa.api`.

Order matters: tokens are masked before anything else is printed; inputs are
validated before anything runs (a bad one is an ``::error`` naming it, exit 2);
everything the run prints, and every echo of model text, is fenced off from
command parsing; then the job summary, the outputs, the annotations, the PR
comment and the README commit, each from the same scored run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from apr_qa.action.commands import Commands
from apr_qa.action.context import GitHubContext, read_context
from apr_qa.action.inputs import ActionInputs, InputError, raw_inputs, read_inputs
from apr_qa.errors import AprQaError, ExitCode

if TYPE_CHECKING:
    from apr_qa.api import ReportResult, RunResult
    from apr_qa.report import RenderResult

__all__ = ["run_action"]

SECRET_INPUTS = ("github-token", "hf-token")


def _fatal(commands: Commands, context: GitHubContext, title: str, lines: Iterable[str]) -> None:
    """A fatal problem: one ``::error`` per line, and the same in the job summary."""
    shown = list(lines)
    for line in shown:
        commands.error(line, title=title)
    if context.step_summary is not None:
        body = "\n".join(f"- {_md(line)}" for line in shown)
        with context.step_summary.open("a", encoding="utf-8") as fh:
            fh.write(f"## apr-qa: {title}\n\n{body}\n")


def _md(text: str) -> str:
    from apr_qa.report.markdown import escape_inline

    return escape_inline(text)


def _output_dir(inputs: ActionInputs) -> Path:
    """Each shard under its own name, so a merge job can download them side by side."""
    if inputs.shard is None:
        return inputs.output_dir
    return inputs.output_dir / f"shard-{inputs.shard.index}-of-{inputs.shard.total}"


def _environment(inputs: ActionInputs, context: GitHubContext) -> None:
    """The runtimes read their settings from the environment: the Hub token, and caches
    kept in the workspace (a container's home does not survive the step)."""
    if inputs.hf_token:
        os.environ["HF_TOKEN"] = inputs.hf_token
    os.environ.setdefault("HF_HOME", str(context.workspace / ".cache" / "huggingface"))


def _give_back(paths: Iterable[Path], workspace: Path) -> None:
    """Running as root in a container, hand what we wrote to the workspace's owner, so
    the runner's later steps (and its clean-up) can touch it."""
    if os.geteuid() != 0:
        return
    try:
        owner = workspace.stat()
    except OSError:
        return
    if owner.st_uid == 0:
        return
    for top in paths:
        if not top.exists():
            continue
        walk = [top, *top.rglob("*")] if top.is_dir() else [top]
        for path in walk:
            try:
                os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
            except OSError:
                continue


def _run(inputs: ActionInputs, commands: Commands, backend: str | None) -> RunResult | ReportResult:
    from apr_qa import api

    config = api.RunConfig(
        output_dir=_output_dir(inputs),
        workers=inputs.workers,
        failure_policy=inputs.failure_policy,
        shard=inputs.shard,
        backends=inputs.backends,
        fail_below=inputs.fail_below,
        trust_remote_code=inputs.trust_remote_code,
        model_path=inputs.model_path,
        baseline=inputs.baseline,
        backend_override=backend,
    )
    with commands.group("apr-qa run"), commands.untrusted():
        if inputs.evidence:  # a matrix's merge job: score the shards' evidence together
            return api.report(inputs.evidence, inputs.output_dir, fail_below=inputs.fail_below)
        return api.run(inputs.playbooks, config)


def _comment(
    report: RenderResult, inputs: ActionInputs, context: GitHubContext, commands: Commands
) -> None:
    from apr_qa.action.comment import Posted, upsert_comment

    body = report.paths["comment"].read_text(encoding="utf-8")
    if context.run_url:
        body += f"\n[Workflow run]({context.run_url})\n"
    assert context.pull_number is not None
    posted = upsert_comment(
        api_url=context.api_url,
        repository=context.repository,
        number=context.pull_number,
        token=inputs.github_token,
        body=body,
    )
    if posted.posted is Posted.REFUSED:
        commands.notice(f"apr-qa: no PR comment: {posted.reason}")
    elif posted.posted is Posted.FAILED:
        commands.warning(f"apr-qa: the PR comment could not be posted: {posted.reason}")
    else:
        commands.out.write(f"apr-qa: PR comment {posted.posted} {posted.url}\n")


def _readme(
    report: RenderResult, inputs: ActionInputs, context: GitHubContext, commands: Commands
) -> list[Path]:
    from apr_qa.action.readme_commit import Committed, commit_certification

    if context.event_name in ("pull_request", "pull_request_target"):
        commands.notice("apr-qa: update-readme is ignored on pull requests (commits only on push)")
        return []
    done = commit_certification(
        [report.paths["summary"]],
        repo=context.workspace,
        readme=inputs.readme_path,
        registry=inputs.registry_path,
        badges=inputs.badges_dir,
        message=inputs.commit_message,
        ref_name=context.ref_name,
    )
    if done.committed is Committed.PUSHED:
        commands.out.write(
            f"apr-qa: certification committed {done.sha} ({done.attempts} push attempt(s))\n"
        )
    else:
        commands.out.write("apr-qa: certification unchanged; nothing committed\n")
    return list(done.files)


def _report(
    report: RenderResult,
    inputs: ActionInputs,
    context: GitHubContext,
    commands: Commands,
    *,
    interrupted: bool,
) -> list[Path]:
    from apr_qa.action.annotations import emit_annotations
    from apr_qa.action.outputs import run_outputs, write_outputs
    from apr_qa.action.summary import append_summary
    from apr_qa.report.terminal import verdict_text

    if inputs.summary and context.step_summary is not None:
        append_summary(context.step_summary, report.run, fail_below=report.fail_below)
    if context.output is not None:
        write_outputs(
            context.output,
            run_outputs(
                report.run, passed=report.passed, report_dir=_output_dir(inputs), files=report.paths
            ),
        )
    with commands.untrusted():  # model names and reasons are not ours to trust
        commands.out.write(
            verdict_text(
                report.run, fail_below=report.fail_below, reports=report.paths, color=False
            )
            + "\n"
        )
    if inputs.verbose:
        with commands.group("apr-qa: failing outputs"):
            for model in report.run.models:
                for record in model.failures:
                    commands.echo(f"{record.gate} {record.cell}:\n{record.output or ''}")
    if inputs.annotations:
        emit_annotations(report.run, context.workspace, commands)
    written: list[Path] = []
    if inputs.pr_comment and context.is_pull_request:
        _comment(report, inputs, context, commands)
    if inputs.update_readme and interrupted:
        # A cancelled run's verdict covers only what finished: never certify it.
        commands.notice("apr-qa: the run was interrupted; the README is not updated")
    elif inputs.update_readme:
        written = _readme(report, inputs, context, commands)
    return written


def run_action(env: Mapping[str, str], out: TextIO, *, backend: str | None = None) -> int:
    """Run the Action as the runner would: inputs from ``env``, commands to ``out``;
    returns the exit code. ``backend`` runs every cell on that backend kind (tests use
    the deterministic ``fake``)."""
    commands = Commands(out)
    raw = raw_inputs(env)
    for name in SECRET_INPUTS:
        if raw[name]:
            commands.mask(raw[name])
    context = read_context(env)
    try:
        inputs = read_inputs(env, context.workspace)
    except InputError as exc:
        for name, message in exc.problems:
            _fatal(commands, context, f"apr-qa: input '{name}'", [message])
        return int(ExitCode.USAGE)
    _environment(inputs, context)
    written: list[Path] = []
    try:
        result = _run(inputs, commands, backend)
        if result.report is None:  # only a run can have nothing to do
            commands.notice(f"apr-qa: nothing to run in shard {inputs.shard}; no report written")
            return result.exit_code
        interrupted = result.exit_code == ExitCode.INTERRUPTED
        written = _report(result.report, inputs, context, commands, interrupted=interrupted)
    except AprQaError as exc:
        _fatal(commands, context, "apr-qa", exc.lines())
        return int(exc.exit_code)
    finally:
        _give_back([inputs.output_dir, *written], context.workspace)
    return result.exit_code
