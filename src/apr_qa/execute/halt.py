"""Why and when work stops: the failure policy's halts and interruptions, shared by
the supervisor (which sets them) and the cells (which check them between scenarios)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from apr_qa.evidence import HaltKind

__all__ = ["Halt", "Stop"]


@dataclass(frozen=True)
class Stop:
    """Why work stops: the kind (stop-on-p0, fail-fast, interrupted) and one line."""

    kind: HaltKind
    reason: str


class Halt:
    """A shared stop signal: set once with the reason; cells check it between scenarios.

    Setting it takes no lock: a signal handler may set it while the thread it
    interrupted is in the middle of anything.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.stop: Stop | None = None

    def set(self, stop: Stop) -> None:
        """Stop with a reason (the first reason wins)."""
        if self.stop is None:
            self.stop = stop
        self._event.set()

    def is_set(self) -> bool:
        """Whether work should stop."""
        return self._event.is_set()
