"""Execution: one worker process per cell, supervised (timeouts, crashes, failure policy)."""

from apr_qa.execute.supervisor import RunOptions, RunOutcome, execute

__all__ = ["RunOptions", "RunOutcome", "execute"]
