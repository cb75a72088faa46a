"""Shrinking: the simplest failing variant of a falsified generated scenario.

hypothesis searches the family's strategy (parameters no more complex than the
falsified instance's) with ``find``: derandomized, no database, no deadline,
generate and shrink phases. Every call of ``fails`` runs the model, so calls are
counted and capped at ``budget``; results are cached by parameters (hypothesis
asks about the same parameters more than once), and the instance we were
given is known to fail without asking. Once the budget is spent, unseen
parameters count as passing, so hypothesis winds down without running the
model. The answer is chosen by the family's ``rank`` among every failing
parameter set seen, not by the order hypothesis visited them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from apr_qa.scenarios import FAMILIES, Instance, vary
from apr_qa.scenarios.family import Params

__all__ = ["shrink"]

_Key = tuple[tuple[str, object], ...]


def _key(params: Params) -> _Key:
    return tuple(sorted(params.items()))


def shrink(
    instance: Instance, fails: Callable[[Instance], bool], *, budget: int = 25
) -> Instance | None:
    """The simplest instance found for which ``fails`` holds, strictly simpler than ``instance``.

    None when the family has nothing to shrink (explicit scenarios,
    determinism), when ``budget`` is below 1, or when no simpler failing
    instance was found within ``budget`` calls of ``fails``. An exception
    raised by ``fails`` stops the search and propagates; hypothesis's own
    exceptions never do.
    """
    family = FAMILIES.get(instance.family)
    if family is None or family.shrinker is None or not instance.params or budget < 1:
        return None
    from hypothesis import HealthCheck, Phase, find, settings

    original = _key(instance.params)
    seen: dict[_Key, tuple[Params, bool]] = {original: (instance.params, True)}
    calls = 0
    problem: list[Exception] = []

    def condition(params: Params) -> bool:
        nonlocal calls
        key = _key(params)
        if key in seen:
            return seen[key][1]
        if calls >= budget or problem:
            return False
        calls += 1
        try:
            failed = bool(fails(vary(instance, params)))
        except Exception as exc:
            problem.append(exc)
            return False
        seen[key] = (params, failed)
        return failed

    options = settings(
        max_examples=budget,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    # fails() cannot raise through here (condition keeps its exceptions), so what
    # find raises is hypothesis's own ending (NoSuchExample, Unsatisfiable, Flaky):
    # the failing parameters seen so far are the whole answer.
    with contextlib.suppress(Exception):
        find(family.shrinker(instance.params), condition, settings=options)
    if problem:
        raise problem[0]
    limit = family.rank(instance.params)
    failing = [p for key, (p, failed) in seen.items() if failed and key != original]
    simpler = [p for p in failing if family.rank(p) < limit]
    if not simpler:
        return None
    return vary(instance, min(simpler, key=family.rank))
