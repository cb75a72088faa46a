"""The `apr-qa` command line: a thin layer over the library.

Every command translates `AprQaError` into one line per problem on stderr and the
documented exit code; Python tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from apr_qa import __version__
from apr_qa.errors import AprQaError, ExitCode

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("apr_qa")


def _guarded(func: F) -> F:
    """Run a command body, turning our errors and Ctrl-C into exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AprQaError as exc:
            for line in exc.lines():
                click.echo(f"apr-qa: error: {line}" if ":" not in line[:1] else line, err=True)
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("apr-qa: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))

    return wrapper  # type: ignore[return-value]


def _configure_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(level, logging.DEBUG), format="apr-qa: %(levelname)s: %(message)s")


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
    from apr_qa.models.convert import convert as run_convert

    out = run_convert(src, dst, quant)
    click.echo(f"wrote {out}")


from apr_qa.report.command import report_command  # noqa: E402

cli.add_command(report_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="apr-qa")


if __name__ == "__main__":  # pragma: no cover
    main()
