"""`apr-qa init` on each bundled model, then a real run of what it wrote (transformers).

One run per fixture, the quick template (one cell of ten scenarios): the playbook
init writes must load, plan and run end to end on the real runtime, with its own
scenarios judged. Measured (docs/library.md): G0-G3 hold on all three; G4 holds
on tiny-qwen2 and is falsified on tiny-llama and tiny-qa, which were trained on a
fixed set of prompts and answer general ones with nothing (empty outputs are
garbage). That is G4 doing its job, so these tests assert what holds for any
sound model (G0-G3), and that G4 judged exactly the outputs the run produced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apr_qa import api
from apr_qa.evidence import read_evidence
from apr_qa.fixtures import fixture_path
from apr_qa.library.write import write_playbook
from apr_qa.score import GatewayVerdict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2", "tiny-qa"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    where = tmp_path_factory.mktemp(request.param)
    written = write_playbook(str(fixture_path(request.param)), where / "p.yaml", "quick")
    result = api.run(api.load([written.path]), api.RunConfig(output_dir=where / "out"))
    return written, result, where / "out"


def test_init_playbook_runs_end_to_end(ran) -> None:  # type: ignore[no-untyped-def]
    written, result, out = ran
    assert result.report is not None
    (model,) = result.report.run.models
    verdicts = {g.gateway: g.verdict for g in model.gateways}
    assert [verdicts[g] for g in ("G0", "G1", "G2", "G3")] == [GatewayVerdict.PASSED] * 4
    assert verdicts["G4"] in (GatewayVerdict.PASSED, GatewayVerdict.FAILED)
    records = read_evidence([out / "evidence.jsonl"]).records
    scenarios = [r for r in records if r.scenario is not None and r.scenario.id != "g2-probe"]
    assert len(scenarios) == written.tests  # every planned scenario ran
    judged = [r for r in scenarios if "garbage" in r.metrics]
    (g4,) = [r for r in records if r.gate == "G4-GARBAGE-001"]
    garbage = sum(1 for r in judged if r.metrics["garbage"])
    assert judged and g4.metrics["outputs"] == len(judged) and g4.metrics["garbage"] == garbage
    assert (verdicts["G4"] == GatewayVerdict.PASSED) is (garbage / len(judged) <= 0.25)


def test_init_playbook_asks_its_own_prompts(ran) -> None:  # type: ignore[no-untyped-def]
    """The explicit scenarios init wrote each ran once, from the file init wrote."""
    written, _result, out = ran
    records = read_evidence([out / "evidence.jsonl"]).records
    explicit = [r.scenario for r in records if r.scenario is not None and r.scenario.line]
    book = api.load([written.path]).playbooks[0]
    wanted = {(s.name, s.source.line) for s in book.scenarios if s.applies_to("run")}
    assert wanted and {(s.name, s.line) for s in explicit} == wanted
    assert all(s.file is not None and Path(s.file).name == written.path.name for s in explicit)
