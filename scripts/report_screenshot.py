"""Run a real playbook and screenshot its HTML report for the README.

Usage: python scripts/report_screenshot.py [PLAYBOOK] [OUT.png]
Defaults: examples/break-tiny-llama.playbook.yaml (the bundled tiny model,
tried with generated scenarios it was never trained on) and docs/img/report.png.
Needs Debian's chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1280, 1400
ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the playbook, render, screenshot; exit 3 without chromium."""
    book = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples/break-tiny-llama.playbook.yaml"
    )
    out = Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "docs/img/report.png").resolve()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found (apt-get install -y chromium)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        run = [
            sys.executable,
            "-m",
            "apr_qa.cli",
            "-q",
            "run",
            "-w",
            "2",
            "-o",
            str(report),
            str(book),
        ]
        code = subprocess.run(run, check=False).returncode
        if code not in (0, 1):
            print(f"apr-qa run exited {code}", file=sys.stderr)
            return code
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
                (report / "report.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
