"""Engine tests: each test's workers carry a marker of their own (see own_workers.py)."""

from __future__ import annotations

import os
import uuid

import pytest
from own_workers import OWNER_VAR


@pytest.fixture(autouse=True)
def _worker_owner(monkeypatch: pytest.MonkeyPatch) -> str:
    """Mark the environment that this test's workers inherit."""
    marker = f"{os.getpid()}-{uuid.uuid4().hex}"
    monkeypatch.setenv(OWNER_VAR, marker)
    return marker
