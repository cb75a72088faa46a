"""Combinators: ``all_of`` and ``any_of`` over nested oracle specs.

``oracles`` is a list of specs, each ``{name: ..., <options>}`` or the upstream
``{type: ..., config: {...}}``. A skipped child is never counted as passed:
``all_of`` passes only when every child passed, fails when any failed, and is
skipped otherwise; ``any_of`` passes when any child passed, fails when every
child failed, and is skipped otherwise. A child that ran past its time bound
decided nothing: the combination is ``timed_out`` where that child's verdict
could have changed the result (no failure for ``all_of``, no pass for ``any_of``).
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
        failed = [n for n, v in verdicts if _failed(v)]
        skipped = [n for n, v in verdicts if v.skipped]
        timed_out = [v.reason for _, v in verdicts if v.timed_out]
        facts: dict[str, object] = {
            "rule": self.name,
            "children": [
                {
                    "oracle": n,
                    "passed": v.passed,
                    "skipped": v.skipped,
                    "timed_out": v.timed_out,
                    "reason": v.reason,
                }
                for n, v in verdicts
            ],
        }
        tally = f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped"
        tally += f", {len(timed_out)} timed out" if timed_out else ""
        if self.name == "all_of":
            if failed:
                why = next(v.reason for _, v in verdicts if _failed(v))
                return Verdict.fail(f"all_of: {tally}; first failure: {why}", **facts)
            if timed_out:
                return Verdict.timeout(f"all_of: {tally}; {timed_out[0]}", **facts)
            if skipped:
                return Verdict.skip(f"all_of: {tally}; a skipped check is not a pass", **facts)
            return Verdict.ok(f"all_of: {tally}", **facts)
        if passed:
            return Verdict.ok(f"any_of: {tally}", **facts)
        if timed_out:
            return Verdict.timeout(f"any_of: {tally}; {timed_out[0]}", **facts)
        if skipped:
            return Verdict.skip(f"any_of: {tally}; nothing passed", **facts)
        return Verdict.fail(f"any_of: {tally}", **facts)

    def check_expected(self, expected: object) -> str | None:
        """The first child's objection to ``expected`` (children share the scenario's)."""
        for name, child in self.children:
            check = getattr(child, "check_expected", None)
            problem = check(expected) if check is not None else None
            if isinstance(problem, str):
                return f"oracle {self.name!r}, {name}: {problem}"
        return None


def _failed(verdict: Verdict) -> bool:
    return not verdict.passed and not verdict.skipped and not verdict.timed_out


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
