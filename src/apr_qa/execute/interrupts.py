"""The signals that stop a run, caught for as long as the run owns its output.

SIGINT (Ctrl-C), SIGTERM (a container stopped, GitHub cancelling a job after its
SIGINT) and SIGHUP (the terminal closed) all stop a run the same way: workers
killed, what finished kept, reports written, exit 130. The handler only records
the first signal and calls the run's hook, which sets state and kills worker
process groups: no lock and no I/O, so a second or third signal arriving inside
it is harmless.

The catching spans the whole run, not only the engine: a signal before the first
cell starts leaves every check skipped as interrupted, and one while the reports
are written no longer kills the process half way through them (a late SIGTERM did,
leaving no reports; a late Ctrl-C left some).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["INTERRUPT_SIGNALS", "Interrupts"]

INTERRUPT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each stops the run the same way: workers killed, what finished kept, reports written."""

Hook = Callable[[signal.Signals], None]
"""Called in the signal handler with the first signal received: set state, no I/O."""


class Interrupts:
    """Whether (and by which signal first) a run was interrupted, and whom to tell."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._hook: Hook | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        """The signal handler: remember the first signal, pass it on to the hook."""
        if self.received is None:
            self.received = signal.Signals(signum)
        hook = self._hook
        if hook is not None:
            hook(self.received)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Catch the interrupting signals until the block ends, then restore the
        previous handlers. Outside the main thread Python cannot set handlers; the
        caller's own handling stays in force there."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in INTERRUPT_SIGNALS:
                previous[sig] = signal.signal(sig, self.handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def attached(self, hook: Hook) -> Iterator[None]:
        """Tell ``hook`` of a signal while the block runs, and at once of one already
        received (it may see the same signal twice: it must be idempotent)."""
        self._hook = hook
        try:
            if self.received is not None:
                hook(self.received)
            yield
        finally:
            self._hook = None
