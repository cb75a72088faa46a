"""GitHub Actions workflow commands (``::name key=value::message``), escaped.

The runner reads every line a step prints. A line that starts with ``::`` is a
command, so anything echoed that we did not write ourselves (model output, a
prompt, a file name) could forge one: an ``::error::`` annotation, an
``::add-mask::``, a ``::set-output::``. Messages are escaped (``%``, CR, LF) and
properties additionally (``:`` and ``,``), as the runner's own toolkit does; text
that is not ours is printed only between ``::stop-commands::<token>`` and
``::<token>::``, with a token the text cannot guess.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from typing import TextIO

__all__ = [
    "Commands",
    "escape_data",
    "escape_property",
    "format_command",
]


def escape_data(text: str) -> str:
    """A command's message as the runner unescapes it back (``%`` first, then CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command property's value: the message escapes plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_command(
    name: str, message: str = "", properties: Mapping[str, str] | None = None
) -> str:
    """One workflow-command line; properties with an empty value are left out."""
    props = ",".join(
        f"{key}={escape_property(value)}" for key, value in (properties or {}).items() if value
    )
    head = f"::{name} {props}" if props else f"::{name}"
    return f"{head}::{escape_data(message)}"


class Commands:
    """Writes workflow commands, and untrusted text fenced off from command parsing."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def command(
        self, name: str, message: str = "", properties: Mapping[str, str] | None = None
    ) -> None:
        """Print one workflow command."""
        self.out.write(format_command(name, message, properties) + "\n")
        self.out.flush()

    def mask(self, secret: str) -> None:
        """Have the runner replace ``secret`` with ``***`` in every later log line."""
        for line in secret.splitlines() or [secret]:
            if line.strip():
                self.command("add-mask", line)

    def notice(self, message: str, **properties: str) -> None:
        """A notice annotation (or a plain notice line when it names no file)."""
        self.command("notice", message, properties)

    def warning(self, message: str, **properties: str) -> None:
        """A warning annotation."""
        self.command("warning", message, properties)

    def error(self, message: str, **properties: str) -> None:
        """An error annotation."""
        self.command("error", message, properties)

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A collapsible group in the log."""
        self.command("group", title)
        try:
            yield
        finally:
            self.command("endgroup")

    @contextlib.contextmanager
    def untrusted(self) -> Iterator[None]:
        """Command processing off for what is printed inside: the runner treats every
        line as text until it reads the random token this prints first."""
        token = secrets.token_hex(16)
        self.command("stop-commands", token)
        try:
            yield
        finally:
            self.out.flush()
            self.out.write(f"::{token}::\n")
            self.out.flush()

    def echo(self, text: str) -> None:
        """Print text that may hold anything (model output): fenced off, never a command."""
        with self.untrusted():
            self.out.write(text if text.endswith("\n") else text + "\n")
