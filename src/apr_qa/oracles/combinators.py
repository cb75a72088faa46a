"""Combinators: ``all_of`` and ``any_of`` over nested oracle specs.

``oracles`` is a list of specs, each ``{name: ..., <options>}`` or the upstream
``{type: ..., config: {...}}``. A skipped child is never counted as passed:
``all_of`` passes only when every child passed, fails when any failed, and is
skipped otherwise; ``any_of`` passes when any child passed, fails when every
child failed, and is skipped otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from apr_qa.errors import UsageError
from apr_qa.oracles import Oracle, Verdict, create, parse_spec, register

__all__ = ["Combined", "all_of", "any_of"]


@dataclass(frozen=True)
class Combined:
    """Runs every child oracle and combines their verdicts."""

    name: str
    children: tuple[tuple[str, Oracle], ...]

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Combine the children's verdicts (see module doc)."""
        verdicts = [(n, o(output, prompt=prompt, expected=expected)) for n, o in self.children]
        passed = [n for n, v in verdicts if v.passed]
        failed = [n for n, v in verdicts if not v.passed and not v.skipped]
        skipped = [n for n, v in verdicts if v.skipped]
        facts: dict[str, object] = {
            "rule": self.name,
            "children": [
                {"oracle": n, "passed": v.passed, "skipped": v.skipped, "reason": v.reason}
                for n, v in verdicts
            ],
        }
        tally = f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped"
        if self.name == "all_of":
            if failed:
                why = next(v.reason for _, v in verdicts if not v.passed and not v.skipped)
                return Verdict.fail(f"all_of: {tally}; first failure: {why}", **facts)
            if skipped:
                return Verdict.skip(f"all_of: {tally}; a skipped check is not a pass", **facts)
            return Verdict.ok(f"all_of: {tally}", **facts)
        if passed:
            return Verdict.ok(f"any_of: {tally}", **facts)
        if skipped:
            return Verdict.skip(f"any_of: {tally}; nothing passed", **facts)
        return Verdict.fail(f"any_of: {tally}", **facts)


def _children(name: str, oracles: object) -> tuple[tuple[str, Oracle], ...]:
    if not isinstance(oracles, list | tuple) or not oracles:
        raise UsageError(f"oracle {name!r}: option 'oracles' must be a non-empty list of specs")
    built: list[tuple[str, Oracle]] = []
    for position, spec in enumerate(oracles, start=1):
        try:
            child, options = parse_spec(spec)
            built.append((child, create(child, options)))
        except UsageError as exc:
            raise UsageError(f"oracle {name!r}, oracles[{position}]: {exc}") from None
    return tuple(built)


@register("all_of")
def all_of(*, oracles: object = None) -> Combined:
    """Pass when every nested oracle passes."""
    return Combined("all_of", _children("all_of", oracles))


@register("any_of")
def any_of(*, oracles: object = None) -> Combined:
    """Pass when at least one nested oracle passes."""
    return Combined("any_of", _children("any_of", oracles))
