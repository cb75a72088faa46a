"""The code_syntax oracle: does the output's code parse? Model output is never run.

Code is every fenced block (```lang ... ```; an unclosed fence, as when
``max_tokens`` cut the answer, runs to the end), or, with no fence, the whole
stripped output. Each block's language is its fence tag when it names one, else
the single configured language, else a guess from telltale syntax among the
configured ones. Python is checked with ``ast.parse``, JSON with ``json.loads``,
TOML with ``tomllib``; other languages cannot be parsed safely here and are
skipped with that reason, never passed. Empty code fails. An output over
``MAX_CODE_CHARS`` is skipped with the reason: parsing time stays bounded.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, register
from apr_qa.oracles._options import as_str, one_or_many

__all__ = [
    "CHECKABLE",
    "KNOWN_LANGUAGES",
    "MAX_CODE_CHARS",
    "CodeSyntax",
    "code_blocks",
    "code_syntax",
]

# Longest output parsed: far beyond a code answer, short enough that parsing stays quick.
MAX_CODE_CHARS = 100_000
_ALIASES = {
    "py": "python",
    "python3": "python",
    "py3": "python",
    "js": "javascript",
    "node": "javascript",
    "jsx": "javascript",
    "ts": "typescript",
    "rs": "rust",
    "sh": "bash",
    "shell": "bash",
    "c++": "cpp",
    "golang": "go",
}
_UNCHECKED = (
    "rust", "javascript", "typescript", "c", "cpp", "go", "java", "bash", "sql",
    "csharp", "kotlin", "swift", "ruby", "php", "scala", "haskell", "lua", "r",
    "dart", "zig", "julia", "perl",
)  # fmt: skip
_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S
)
# Telltale syntax, tried in order, to name an untagged block's language.
_TELLTALES = (
    ("rust", re.compile(r"\bfn\s+\w+\s*\(|\blet\s+mut\b|\bprintln!|\bimpl\b|->\s*\w+\s*\{")),
    ("javascript", re.compile(r"\bfunction\b|\bconst\s|\blet\s|=>|console\.log|;\s*$", re.M)),
    ("python", re.compile(r"^\s*(def|class|import|from)\s|\bprint\(|:\s*$", re.M)),
    ("json", re.compile(r"\A\s*[\[{]")),
)


def _parse_python(code: str) -> str | None:
    try:
        with warnings.catch_warnings():
            # Invalid escapes and the like warn; they are not syntax errors.
            warnings.simplefilter("ignore")
            ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _parse_json(code: str) -> str | None:
    try:
        json.loads(code)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} col {exc.colno}: {exc.msg}"
    except RecursionError:
        return "nested too deeply"
    return None


def _parse_toml(code: str) -> str | None:
    try:
        tomllib.loads(code)
    except tomllib.TOMLDecodeError as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply"
    return None


CHECKABLE: dict[str, Callable[[str], str | None]] = {
    "python": _parse_python,
    "json": _parse_json,
    "toml": _parse_toml,
}
KNOWN_LANGUAGES = (*CHECKABLE, *_UNCHECKED)


def _canonical(tag: str) -> str | None:
    tag = _ALIASES.get(tag.lower(), tag.lower())
    return tag if tag in KNOWN_LANGUAGES else None


def code_blocks(output: str) -> list[tuple[str | None, str]]:
    """``(fence tag language or None, code)`` for each block; the bare output if unfenced."""
    blocks: list[tuple[str | None, str]] = [
        (_canonical(m.group(1)), m.group(2)) for m in _FENCE.finditer(output)
    ]
    return blocks or [(None, output.strip())]


@dataclass(frozen=True)
class CodeSyntax:
    """Parses each code block in its language; never executes it."""

    languages: tuple[str, ...]

    def _language(self, tag: str | None, code: str) -> str:
        if tag is not None:
            return tag
        if len(self.languages) == 1:
            return self.languages[0]
        for language, telltale in _TELLTALES:
            if language in self.languages and telltale.search(code):
                return language
        return self.languages[0]

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when every checkable block parses; skip when none could be checked."""
        if len(output) > MAX_CODE_CHARS:
            # Parsers are not all linear on hostile input; a cut block would not parse anyway.
            return Verdict.skip(
                f"code_syntax: output of {len(output)} chars is over the {MAX_CODE_CHARS} "
                "this oracle parses; not judged",
                rule="code_syntax",
            )
        checked: list[str] = []
        unchecked: list[str] = []
        for tag, code in code_blocks(output):
            language = self._language(tag, code)
            facts: dict[str, object] = {"rule": "code_syntax", "language": language}
            if not code.strip():
                return Verdict.fail(f"code_syntax: empty {language} code", **facts)
            parse = CHECKABLE.get(language)
            if parse is None:
                unchecked.append(language)
                continue
            error = parse(code)
            if error is not None:
                return Verdict.fail(
                    f"code_syntax: {language} code does not parse: {error}", error=error, **facts
                )
            checked.append(language)
        if not checked:
            return Verdict.skip(
                f"code_syntax: cannot parse {', '.join(sorted(set(unchecked)))} safely here; "
                "nothing was checked",
                rule="code_syntax",
                languages=unchecked,
            )
        note = f"; not checked: {', '.join(sorted(set(unchecked)))}" if unchecked else ""
        parsed = ", ".join(sorted(set(checked)))
        return Verdict.ok(
            f"code_syntax: {len(checked)} block(s) parse as {parsed}{note}",
            rule="code_syntax",
            languages=checked,
            unchecked=unchecked,
        )


@register("code_syntax")
def code_syntax(*, language: object = None, languages: object = None) -> CodeSyntax:
    """The code_syntax oracle; ``language`` or ``languages`` default to python."""
    names = one_or_many("code_syntax", ("language", language), ("languages", languages))
    resolved: list[str] = []
    for raw in names or ["python"]:
        canonical = _canonical(as_str("code_syntax", "language", raw))
        if canonical is None:
            known = ", ".join(KNOWN_LANGUAGES)
            raise UsageError(f"oracle 'code_syntax': unknown language {raw!r}; known: {known}")
        resolved.append(canonical)
    return CodeSyntax(tuple(dict.fromkeys(resolved)))
