"""``apr-qa report``: re-score and re-render from evidence files alone.

Kept light to import: ``apr-qa --help`` loads this module, so everything heavy
is imported inside the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["report_command"]


@click.command("report")
@click.argument(
    "evidence", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for summary.json, junit.xml, report.html, summary.md, comment.md.",
)
@click.option(
    "--fail-below",
    default="C",
    show_default=True,
    metavar="GRADE",
    help="Exit 1 when a model's grade is below this (A+, A, B+, B, C, F) or a gateway failed.",
)
@click.pass_context
def report_command(
    ctx: click.Context, evidence: tuple[Path, ...], output: Path, fail_below: str
) -> None:
    """Score EVIDENCE.jsonl files (shards merge) and write the reports; no model is loaded.

    \b
    Exit codes: 0 every model held its gateways and reached --fail-below,
    1 otherwise (or no evidence at all), 2 usage error.
    """
    from apr_qa import api
    from apr_qa.errors import AprQaError
    from apr_qa.report.terminal import verdict_text

    try:
        done = api.report(evidence, output, fail_below=fail_below)
    except AprQaError as exc:
        for line in exc.lines():
            click.echo(f"apr-qa: error: {line}", err=True)
        sys.exit(int(exc.exit_code))
    result = done.report
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    for warning in result.run.warnings if not quiet else ():
        click.echo(f"apr-qa: warning: {warning}", err=True)
    if not quiet:
        text = verdict_text(
            result.run,
            fail_below=result.fail_below,
            reports=result.paths,
            color=sys.stdout.isatty(),
            warnings=False,
        )
        click.echo(text)
    sys.exit(result.exit_code)
