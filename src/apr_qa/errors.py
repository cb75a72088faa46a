"""One exception tree, translated into exit codes at the CLI boundary.

A model that fails a check is evidence, never an exception: these errors are for
input that cannot be used (a bad playbook, a missing model, a missing runtime).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AprQaError",
    "EnvironmentProblem",
    "ExitCode",
    "PlaybookError",
    "Problem",
    "UsageError",
]


class ExitCode(IntEnum):
    """Exit codes shared by every command (documented in the README)."""

    OK = 0
    FALSIFIED = 1
    USAGE = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130


class Problem:
    """One located problem: ``file:line:col: message``."""

    __slots__ = ("col", "file", "line", "message")

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        self.file = file
        self.line = line
        self.col = col
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class AprQaError(Exception):
    """Root of every error apr-qa raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE

    def lines(self) -> list[str]:
        """The error as the lines printed on stderr."""
        return [str(self)]


class UsageError(AprQaError):
    """The command line or an input file cannot be used (exit 2)."""

    exit_code = ExitCode.USAGE


class PlaybookError(UsageError):
    """A playbook failed to load or validate; carries every located problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class EnvironmentProblem(AprQaError):
    """Something outside the input is missing: a runtime, a model, a device (exit 3)."""

    exit_code = ExitCode.ENVIRONMENT
