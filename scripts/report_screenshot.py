"""Render the HTML report of a demo run and screenshot it for the docs.

Usage: python scripts/report_screenshot.py [docs/img/report.png]
Needs Debian's chromium (apt-get install -y chromium). The demo evidence is
synthetic (a certified model and a blocked mutant), built in this script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from apr_qa.evidence import Outcome, Record, ScenarioInfo
from apr_qa.report import render_reports

WIDTH, HEIGHT = 1280, 1400


def _record(i: int, model: str, gate: str, outcome: Outcome, **kw: object) -> Record:
    from apr_qa.gates import lookup

    gate_info = lookup(gate)
    assert gate_info is not None
    values: dict[str, object] = {
        "format": "gguf",
        "quantization": "q4_k_m",
        "backend": "cpu",
        "modality": "run",
        "reason": "oracle held",
        "metrics": {"duration_s": 0.42},
        "playbook": "playbooks/tiny-llama.yaml",
        "playbook_sha256": "3f" * 32,
        "host": {"python": "3.11.7", "torch": "2.13.0", "llama-cpp-python": "0.3.16"},
        **kw,
    }
    return Record(
        run_id="demo",
        record_id=f"{model.split('/')[-1]}-{i:03d}",
        gate=gate,
        category=str(gate_info.category),
        severity=str(gate_info.severity),
        outcome=outcome,
        model=model,
        timestamp="2025-01-01T00:00:00.000+00:00",
        **values,  # type: ignore[arg-type]
    )


def demo_records() -> list[Record]:
    """A tiny llama that passes nearly everything, and a transposed-embedding mutant."""
    records: list[Record] = []
    model = "apr-qa/tiny-llama"
    cells = [
        ("safetensors", "f32", "cpu", "run"),
        ("gguf", "f32", "cpu", "run"),
        ("gguf", "q8_0", "cpu", "run"),
        ("gguf", "q4_k_m", "cpu", "chat"),
    ]
    n = 0
    for g in ("G0-INTEGRITY-001", "G1-LOAD-001", "G2-INFER-001", "G3-CRASH-001", "G4-GARBAGE-001"):
        n += 1
        records.append(_record(n, model, g, Outcome.CORROBORATED))
    for fmt, quant, backend, modality in cells:
        for k in range(8):
            n += 1
            failed = quant == "q4_k_m" and k < 2
            records.append(
                _record(
                    n,
                    model,
                    "F-A2-001" if modality == "chat" else "F-A1-001",
                    Outcome.FALSIFIED if failed else Outcome.CORROBORATED,
                    format=fmt,
                    quantization=quant,
                    backend=backend,
                    modality=modality,
                    reason=f"expected '{k + 2}' in the answer" if failed else "oracle held",
                    scenario=ScenarioInfo(
                        f"arith-{k}",
                        "contains",
                        f"What is {k} + 2?",
                        file="playbooks/tiny-llama.yaml",
                        line=30 + k,
                    ),
                    output=f"{k} + 2 = {k + 3}" if failed else None,
                    counterexample=f"{k} + 2" if failed else None,
                )
            )
    for gate, count, fails in (
        ("F-STAB-DET-001", 6, 0),
        ("F-ROSETTA-INF-001", 4, 0),
        ("F-EDGE-001", 6, 1),
        ("F-REGR-GOLDEN-001", 3, 0),
    ):
        for k in range(count):
            n += 1
            records.append(
                _record(
                    n,
                    model,
                    gate,
                    Outcome.FALSIFIED if k < fails else Outcome.CORROBORATED,
                    reason="<script>alert(1)</script> echoed" if k < fails else "ok",
                    output="<script>alert(1)</script>" if k < fails else None,
                )
            )
    for _ in range(2):
        n += 1
        records.append(
            _record(
                n,
                model,
                "F-PROFILE-CI-001",
                Outcome.SKIPPED,
                backend="gpu",
                reason="gpu requested but no CUDA device",
            )
        )
    return records


def main() -> int:
    """Write the screenshot; exit 3 without chromium."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/report.png").resolve()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found (apt-get install -y chromium)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as tmp:
        result = render_reports(demo_records(), Path(tmp) / "report")
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp}/profile",
                f"--screenshot={out}",
                f"--window-size={WIDTH},{HEIGHT}",
                result.paths["html"].as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
