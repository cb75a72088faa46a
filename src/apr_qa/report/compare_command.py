"""``apr-qa compare A B``: what moved between two runs, by stable check key.

Kept light to import: ``apr-qa --help`` loads this module, so everything heavy
is imported inside the command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["compare_command"]


@click.command("compare")
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--markdown", is_flag=True, help="Print it as Markdown (a PR comment).")
@click.pass_context
def compare_command(
    ctx: click.Context, before: Path, after: Path, as_json: bool, markdown: bool
) -> None:
    """Compare run AFTER with run BEFORE (each an evidence.jsonl, a summary.json or a
    run directory; a directory of shard evidence is merged first).

    \b
    Exit codes: 0 no check regressed, 1 some check regressed,
    2 usage error (a run that cannot be read).
    """
    from apr_qa import api
    from apr_qa.errors import AprQaError, UsageError
    from apr_qa.report.comparison import comparison_json, comparison_markdown, comparison_text

    try:
        if as_json and markdown:
            raise UsageError("--json and --markdown are exclusive")
        result = api.compare(before, after)
    except AprQaError as exc:
        for line in exc.lines():
            click.echo(f"apr-qa: error: {line}", err=True)
        sys.exit(int(exc.exit_code))
    document = comparison_json(
        result.comparison, before=str(before), after=str(after), warnings=result.warnings
    )
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    for warning in result.warnings if not quiet and not (as_json or markdown) else ():
        click.echo(f"apr-qa: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif markdown:
        click.echo(comparison_markdown(document), nl=False)
    elif not quiet:
        click.echo(comparison_text(document), nl=False)
    sys.exit(result.exit_code)
