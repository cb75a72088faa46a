"""Serve tests: each test's servers carry a marker of their own (see ../execute/own_workers.py)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execute"))

from own_workers import OWNER_VAR


@pytest.fixture(autouse=True)
def _worker_owner(monkeypatch: pytest.MonkeyPatch) -> str:
    """Mark the environment that this test's workers and servers inherit."""
    marker = f"{os.getpid()}-{uuid.uuid4().hex}"
    monkeypatch.setenv(OWNER_VAR, marker)
    return marker
