"""``apr-qa init`` and ``apr-qa templates``: start from a playbook, not a blank file.

Kept light to import: ``apr-qa --help`` loads this module, so the library is
imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from apr_qa.library.catalogue import TEMPLATE_NAMES

__all__ = ["init_command", "templates_command"]


@click.command("templates")
def templates_command() -> None:
    """List the shipped playbook templates, one line each (cheapest first)."""
    from apr_qa.library.catalogue import templates

    for template in templates():
        click.echo(f"{template.name:<6} {template.summary.split(': ', 1)[-1]}")


@click.command("init")
@click.argument("model")
@click.option(
    "-t",
    "--template",
    type=click.Choice(TEMPLATE_NAMES),
    help="Template to start from (default: by size: full under 1B parameters, "
    "ci up to 14B, quick above).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Playbook to write (default: NAME.playbook.yaml in the current directory).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option(
    "--no-golden",
    is_flag=True,
    help="Do not record golden outputs (the full template otherwise runs the checkpoint once).",
)
def init_command(
    model: str, template: str | None, output: Path | None, force: bool, no_golden: bool
) -> None:
    """Write a playbook for MODEL: a checkpoint directory or a Hugging Face repo id.

    \b
    Reads config.json and the tokenizer files (a repo id: from the Hugging Face
    cache, or the Hub when online): architecture, parameter count and size, chat
    template or not, tokenizer kind. Picks the template and thresholds by size and
    writes scenarios in the model's prompt form (conversations with a chat
    template, completion prompts without). The playbook is validated and planned
    before the command reports it.

    \b
    Exit codes: 0 written, 2 MODEL is a path but not a model checkpoint, or the
    output exists (use --force), 3 MODEL is neither a local path nor a repo id
    found in the cache or on the Hub.
    """
    from apr_qa.cli import _guarded

    _guarded(_init)(model, template, output, force, no_golden)


def _init(
    model: str, template: str | None, output: Path | None, force: bool, no_golden: bool
) -> None:
    from apr_qa import api
    from apr_qa.errors import UsageError

    if output is None:
        slug = Path(model.rstrip("/")).name.lower() or "model"
        output = Path(f"{slug}.playbook.yaml")
    if output.exists() and not force:
        raise UsageError(f"{output}: exists; use --force to overwrite it")
    written = api.init(model, output, template, record_golden=not no_golden)
    survey = written.survey
    click.echo(
        f"wrote {written.path}: template {written.template}, {survey.model_id} "
        f"({survey.architecture}, {survey.size_category}, {survey.prompt_form} prompts), "
        f"{written.cells} cells, {written.tests} tests"
    )
    if written.golden is not None:
        click.echo(f"recorded golden outputs in {written.golden}")
    click.echo(f"next: apr-qa run {written.path}")
