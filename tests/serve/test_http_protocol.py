"""F-HTTP protocol gates: a server misbehaving in one way is falsified on exactly
the gate that names it; a well-behaved one corroborates them all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import misbehaving
import pytest

from apr_qa.checks.http_protocol import Probe, protocol_findings, shown
from apr_qa.evidence import Outcome
from apr_qa.serve.http import Endpoint
from apr_qa.serve.launch import free_port, wait_ready

PROBE = Probe(({"role": "user", "content": "What is 2 + 2?"},), "What is 2 + 2?", 10, 3.0)
PROTOCOL_GATES = {f"F-HTTP-{i:03d}" for i in range(1, 12)}
EXPECTED = {
    "malformed-json": "F-HTTP-002",
    "leak": "F-HTTP-005",
    "no-done": "F-HTTP-003",
    "hang-5th": "F-HTTP-010",
    "die-on-large": "F-HTTP-009",
    "no-completions": "F-HTTP-004",
    "no-usage": "F-HTTP-006",
    "500-on-empty": "F-HTTP-007",
    "200-on-malformed": "F-HTTP-008",
    "random": "F-HTTP-011",
}


def _serve(fault: str | None) -> Iterator[Endpoint]:
    # A process of its own: the die-on-large fault exits the whole server.
    port = free_port()
    args = [sys.executable, str(Path(misbehaving.__file__)), str(port), *([fault] if fault else [])]
    proc = subprocess.Popen(args)
    try:
        endpoint = Endpoint(f"http://127.0.0.1:{port}")
        ready, why = wait_ready(endpoint, 30)
        assert ready, why
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


def test_a_well_behaved_server_corroborates_every_protocol_gate() -> None:
    for endpoint in _serve(None):
        findings = protocol_findings(endpoint, PROBE)
        assert {f.gate for f in findings} == PROTOCOL_GATES, shown(findings)
        assert all(f.outcome is Outcome.CORROBORATED for f in findings), shown(findings)


@pytest.mark.parametrize("fault", misbehaving.FAULTS)
def test_a_misbehaving_server_is_falsified_on_exactly_the_matching_gate(fault: str) -> None:
    for endpoint in _serve(fault):
        findings = protocol_findings(endpoint, PROBE)
        falsified = {f.gate for f in findings if f.outcome is Outcome.FALSIFIED}
        assert falsified == {EXPECTED[fault]}, shown(findings)
        # Nothing else is charged: a gate with nothing to look into is skipped, not passed.
        for f in findings:
            assert f.outcome in (Outcome.FALSIFIED, Outcome.CORROBORATED, Outcome.SKIPPED)


def test_nothing_listening_fails_health_alone() -> None:
    endpoint = Endpoint(f"http://127.0.0.1:{free_port()}")
    findings = protocol_findings(endpoint, PROBE)
    assert [(f.gate, f.outcome) for f in findings] == [("F-HTTP-001", Outcome.FALSIFIED)]
