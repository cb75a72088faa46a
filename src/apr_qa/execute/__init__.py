"""Execution: one worker process per cell, supervised (timeouts, crashes, failure policy)."""

from apr_qa.execute.supervisor import RunOptions, RunOutcome, execute
from apr_qa.execute.warm import WarmPool

__all__ = ["RunOptions", "RunOutcome", "WarmPool", "execute"]
