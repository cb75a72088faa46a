"""report.html opened in real headless Chromium: renders, no errors, escapes output."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from fixture_runs import XSS, clean_run, mutant_run
from scoring_records import gateways_passed, rec

from apr_qa.evidence import Outcome
from apr_qa.report import render_reports
from apr_qa.report.html import html_string
from apr_qa.score import score

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium not installed (apt-get install -y chromium)"
)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct RGB(A) pixels of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colors: set[bytes] = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 7 == 0:
            colors.update(bytes(line[x : x + 3]) for x in range(0, stride, bpp * 5))
        prev = line
    return width, height, colors


def test_html_is_self_contained_and_escapes_output() -> None:
    page = html_string(score(mutant_run()))
    assert "<script" not in page.replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for needle in ("http://", "https://", "<link", "@import", "src="):
        assert needle not in page, needle
    assert "Content-Security-Policy" in page


@needs_chromium
def test_chromium_renders_the_mutant_report(tmp_path: Path) -> None:
    result = render_reports(clean_run() + mutant_run(), tmp_path / "out")
    url = result.paths["html"].resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<script>" not in dom.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout  # text, not an element
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Refused to" in ln]
    assert console == []
    for text in ("org/mutant", "org/clean", "Blocked", "Certified", "G2-INFER-001", "not assessed"):
        assert text in dom.stdout, text
    shot = tmp_path / "shot.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    width, height, colors = png_pixels(shot)
    assert (width, height) == (1280, 2000)
    assert len(colors) > 20  # text, bars, heatmap: not a blank page
    assert XSS not in run.stderr


# Every byte a control character leaves in UTF-8: C0 but tab, LF and CR; DEL.
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def test_written_reports_show_control_characters_as_escapes_never_raw(tmp_path: Path) -> None:
    # What a broken model can say: NUL, BEL, an ANSI colour, form feed, DEL and a C1 NEL.
    said = "A\x00B\x07C\x1b[31mred\x1b[0m\x0bD\x0cE\x7fF\x85G"
    records = [
        *gateways_passed(),
        rec("F-A1-001", Outcome.FALSIFIED, reason="bell \x07 in the reason", output=said),
    ]
    result = render_reports(records, tmp_path)
    for name in ("html", "markdown", "comment", "junit"):
        data = result.paths[name].read_bytes()
        assert _RAW_CONTROL.search(data) is None, (name, _RAW_CONTROL.findall(data))
        assert "\x85" not in data.decode("utf-8"), name
    page = result.paths["html"].read_text("utf-8")
    assert r"A\x00B\x07C\x1b[31mred\x1b[0m\x0bD\x0cE\x7fF\x85G" in page
    assert r"bell \x07 in the reason" in page
    markdown = result.paths["markdown"].read_text("utf-8")
    assert r"C\x1b[31mred" in markdown  # in the fenced output
    assert r"bell \\x07 in the reason" in result.paths["comment"].read_text("utf-8")
    assert r"C\x1b[31mred" in result.paths["junit"].read_text("utf-8")
    # summary.json is for machines: it keeps the exact text, as JSON escapes.
    summary = result.paths["summary"].read_text("utf-8")
    assert "\\u0007" in summary and "\x07" not in summary
    (failure,) = json.loads(summary)["models"][0]["top_failures"]
    assert failure["reason"] == "bell \x07 in the reason"
