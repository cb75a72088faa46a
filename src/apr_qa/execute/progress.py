"""Progress on a terminal (rich): cells done, scenarios done, failures so far.

Quiet when stderr is not a terminal: logs stay clean.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A thread-safe progress display; a no-op when disabled."""

    def __init__(self, *, enabled: bool, total: int, cells: int) -> None:
        self.enabled = enabled
        self.total = total
        self.cells = cells
        self.done = 0
        self.cells_done = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]apr-qa[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "scenarios · {task.fields[cells]} · [red]{task.fields[failures]} failed[/]"
                ),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                "run", total=self.total, cells=self._cells(), failures=0
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def _cells(self) -> str:
        return f"{self.cells_done}/{self.cells} cells"

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, cells=self._cells(), failures=self.failures
            )

    def advance(self, n: int = 1) -> None:
        """Scenarios finished."""
        with self._lock:
            self.done += n
            self._refresh()

    def failure(self) -> None:
        """A check failed."""
        with self._lock:
            self.failures += 1
            self._refresh()

    def cell_done(self) -> None:
        """A cell finished."""
        with self._lock:
            self.cells_done += 1
            self._refresh()
