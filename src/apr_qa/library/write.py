"""Write what ``apr-qa init`` composed, and record the golden outputs it asks for.

The file is checked the way ``apr-qa validate`` and ``apr-qa plan`` check it before
``init`` reports success: a playbook ``init`` writes that does not load is a bug,
said plainly rather than left for the first ``apr-qa run`` to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apr_qa.errors import AprQaError, EnvironmentProblem, ExitCode, UsageError
from apr_qa.library.compose import Composed, compose, render
from apr_qa.library.survey import Survey, survey_model

__all__ = ["Written", "write_playbook"]


@dataclass(frozen=True)
class Written:
    """What ``init`` wrote: the playbook, its template, the model, the plan's size."""

    path: Path
    template: str
    survey: Survey
    cells: int
    tests: int
    golden: Path | None


def _write(composed: Composed, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(composed), encoding="utf-8")


def write_playbook(
    model: str, output: Path, template: str | None = None, *, record_golden: bool = True
) -> Written:
    """Survey ``model``, compose its playbook, write it to ``output``, check it loads and plans.

    A template with a ``golden`` section gets its golden outputs recorded beside
    ``output`` (``NAME.golden.jsonl``: the checkpoint's greedy answers to the
    explicit scenarios) when ``record_golden``; otherwise the section is left
    out and the header says how to add it.
    """
    from apr_qa import api
    from apr_qa.plan import build_plan

    survey = survey_model(model)
    composed = compose(survey, output, template)
    data = dict(composed.data)
    golden_path: Path | None = None
    if "golden" in data:
        del data["golden"]
        note = "Golden outputs: record them with `apr-qa golden` and name the file under `golden:`."
        _write(Composed(data, (*composed.header, note), composed.template), output)
        if record_golden:
            golden_path = output.with_name(output.name.split(".")[0] + ".golden.jsonl")
            try:
                _count, digest = api.golden(output, golden_path)
            except AprQaError as exc:
                # The playbook is written (without golden); say how to finish or skip.
                cls = EnvironmentProblem if exc.exit_code == ExitCode.ENVIRONMENT else UsageError
                raise cls(
                    f"{output}: written without golden outputs, which could not be recorded "
                    f"({exc}); run `apr-qa golden` later, or init again with --no-golden"
                ) from exc
            data["golden"] = {"path": golden_path.name, "sha256": digest}
            _write(Composed(data, composed.header, composed.template), output)
    else:
        _write(composed, output)
    the_plan = build_plan(api.load([output]).playbooks)
    return Written(
        output, composed.template, survey, len(the_plan.cells), the_plan.test_count, golden_path
    )
