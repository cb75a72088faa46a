"""Untrusted text (model output, reasons, names) made safe to show in any report.

Control characters are shown, not obeyed and not dropped: NUL, BEL, ESC and the
rest of C0 (all but tab and newline), DEL and C1 become the escape a reader can
look up (``\\x1b``), and a lone surrogate (no UTF-8 form) becomes ``\\ud800``. A
terminal would obey an ESC sequence, a browser shows raw NUL as nothing, and an
XML file cannot hold either; each report would otherwise lose, or act on, the
very bytes that show what a model did wrong.
"""

from __future__ import annotations

import re

__all__ = ["CONTROL", "visible"]

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""What :func:`visible` escapes: C0 except tab and newline, DEL, C1, lone surrogates."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every :data:`CONTROL` character replaced by its visible escape."""
    return CONTROL.sub(_escape, text)
