"""The playbook's ``runtimes`` section: a model format reached through a command line.

The ``apr`` format has no Python library: it is run by its own CLI. Any other
runtime with a command line (llama.cpp's ``llama-cli``, a vendor tool) can be
given the same way. Per format, a ``command`` is a LIST of arguments (never a
shell string, never run through a shell) with placeholders filled in per
request; the prompt is written to a temporary file, never put on the command
line (``{prompt_file}``). ``chat_command`` does the same for chat requests, with
the conversation as a JSON list of ``{role, content}`` in ``{messages_file}``.
``output`` says where the answer is in the program's stdout (all of it by
default; a ``regex``'s named group ``answer`` or first group; or a ``json``
field path such as ``choices.0.text``). ``timeout_s`` bounds one invocation.

Templates are checked when the playbook is loaded: an unknown placeholder is a
located playbook error, not a failure in the middle of a run.
"""

from __future__ import annotations

import json
import re
import shutil
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apr_qa.playbook.model import ModelSpec

__all__ = [
    "CHAT_PLACEHOLDERS",
    "PLACEHOLDERS",
    "RuntimeSpec",
    "apr_artifact",
    "extract",
    "missing_executable",
    "render",
    "runtime_problems",
    "runtime_skip",
    "runtime_specs",
]

PLACEHOLDERS = frozenset(
    {"model", "prompt_file", "max_tokens", "seed", "temperature", "device", "format"}
)
"""What a ``command`` may name."""
CHAT_PLACEHOLDERS = PLACEHOLDERS | {"messages_file"}
"""What a ``chat_command`` may name (the conversation as JSON, and its last user turn
in ``{prompt_file}``)."""


@dataclass(frozen=True)
class RuntimeSpec:
    """How one format's cells run through a command line."""

    format: str
    command: tuple[str, ...]
    chat_command: tuple[str, ...] | None = None
    regex: str | None = None
    """Where the answer is in stdout: the group ``answer``, else the first group, else the match."""
    json_path: str | None = None
    """Where the answer is in stdout parsed as JSON: dot-separated keys and list indexes."""
    timeout_s: float | None = None
    """The longest one invocation may run (the scenario's own timeout when shorter)."""


def _fields(part: str) -> Iterator[str]:
    """The placeholder names in one argument; ValueError for a malformed one."""
    for _, name, spec, conversion in string.Formatter().parse(part):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}} is not a placeholder (write {{{{ for a brace)")
        yield name


def runtime_problems(raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Each problem in a ``runtimes`` section, with the data path it is at (under
    ``runtimes``). The JSON Schema has checked the types already."""
    for fmt, entry in raw.items():
        if not isinstance(entry, Mapping):
            continue
        for key, allowed in (("command", PLACEHOLDERS), ("chat_command", CHAT_PLACEHOLDERS)):
            for i, part in enumerate(entry.get(key) or ()):
                try:
                    unknown = sorted(set(_fields(str(part))) - allowed)
                except ValueError as exc:
                    yield (fmt, key, i), f"runtimes.{fmt}.{key}[{i}]: {exc}"
                    continue
                if unknown:
                    names = ", ".join(f"{{{n}}}" for n in unknown)
                    known = ", ".join(f"{{{n}}}" for n in sorted(allowed))
                    yield (
                        (fmt, key, i),
                        f"runtimes.{fmt}.{key}[{i}]: unknown placeholder {names} (known: {known})",
                    )
        output = entry.get("output")
        if isinstance(output, Mapping) and isinstance(output.get("regex"), str):
            try:
                re.compile(output["regex"])
            except re.error as exc:
                yield (fmt, "output", "regex"), f"runtimes.{fmt}.output.regex: {exc}"


def runtime_specs(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, RuntimeSpec]:
    """The runtime of each format a playbook's ``sections`` configure (loaded and
    checked by the playbook loader)."""
    specs: dict[str, RuntimeSpec] = {}
    for fmt, entry in dict(sections.get("runtimes") or {}).items():
        output = dict(entry.get("output") or {})
        chat = entry.get("chat_command")
        timeout = entry.get("timeout_s")
        specs[str(fmt)] = RuntimeSpec(
            format=str(fmt),
            command=tuple(str(p) for p in entry["command"]),
            chat_command=tuple(str(p) for p in chat) if chat else None,
            regex=str(output["regex"]) if output.get("regex") is not None else None,
            json_path=str(output["json"]) if output.get("json") is not None else None,
            timeout_s=float(timeout) if timeout is not None else None,
        )
    return specs


def render(template: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """The argument list of one invocation (each argument filled in on its own:
    a value with spaces stays one argument, and nothing is parsed by a shell)."""
    return [part.format_map(values) for part in template]


def missing_executable(spec: RuntimeSpec) -> str | None:
    """Why the runtime's program cannot be started here, or None."""
    program = spec.command[0]
    if "/" in program:
        path = Path(program)
        return None if path.is_file() else f"runtime program {program} does not exist"
    return None if shutil.which(program) else f"runtime program {program!r} is not on PATH"


def extract(spec: RuntimeSpec, stdout: str) -> str:
    """The answer in one invocation's stdout; ValueError says why there is none."""
    if spec.json_path is not None:
        try:
            node: Any = json.loads(stdout)
        except ValueError as exc:
            raise ValueError(f"stdout is not JSON ({exc})") from None
        for key in spec.json_path.split("."):
            if (
                isinstance(node, list)
                and key.lstrip("-").isdigit()
                and -len(node) <= int(key) < len(node)
            ):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                raise ValueError(f"stdout JSON has no {spec.json_path!r} (stopped at {key!r})")
        if not isinstance(node, str):
            raise ValueError(f"stdout JSON {spec.json_path!r} is not a string")
        return node
    if spec.regex is not None:
        # MULTILINE: ^ and $ are lines of the log; (?s) in the pattern lets . cross them.
        match = re.search(spec.regex, stdout, re.MULTILINE)
        if match is None:
            raise ValueError(f"stdout has no match for {spec.regex!r}")
        if "answer" in match.groupdict():
            return match.group("answer") or ""
        return (match.group(1) if match.re.groups else match.group(0)) or ""
    return stdout.rstrip("\n")


def runtime_skip(spec: RuntimeSpec | None, fmt: str, modality: str) -> str | None:
    """Why a run or chat cell of ``fmt`` cannot go through its runtime here, or None."""
    if spec is None:
        return f"format {fmt} runs only through a command runtime, and runtimes.{fmt} is not set"
    if modality == "chat" and spec.chat_command is None:
        return f"runtimes.{fmt} has no chat_command for chat cells"
    return missing_executable(spec)


def apr_artifact(model: ModelSpec) -> Path | None:
    """The model's ``.apr`` file: ``model.path`` itself, ``model.files.apr`` inside it,
    or the one ``*.apr`` file in it; None when there is none to name."""
    path = model.path
    if path is None:
        return None
    if path.is_file() or path.suffix.lower() == ".apr":
        return path
    named = model.files.get("apr")
    if named is not None:
        return path / named
    found = sorted(path.glob("*.apr")) if path.is_dir() else []
    return found[0] if len(found) == 1 else None
