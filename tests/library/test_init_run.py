"""`apr-qa init` on each bundled model, then a real run of what it wrote.

One run per fixture of the template init chooses for it (full, for a tiny model:
safetensors and every GGUF, run, chat and serve, generated scenarios, differential,
trace, profile and golden outputs): the playbook must load, plan and run end to end
on the real runtimes with every gateway held and every category assessed. Its
prompts are general ones no fixture was trained on (tests/library/test_compose.py);
the fixtures answer most of them wrongly, or with their fallback line, which is
QUAL's business, not G4's. The G4 verdict must follow from exactly the outputs the
run judged.
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
    written = write_playbook(str(fixture_path(request.param)), where / "p.yaml")
    assert written.template == "full"
    result = api.run(api.load([written.path]), api.RunConfig(output_dir=where / "out"))
    return written, result, where / "out"


def test_init_playbook_runs_end_to_end(ran) -> None:  # type: ignore[no-untyped-def]
    _written, result, out = ran
    assert result.report is not None
    (model,) = result.report.run.models
    verdicts = {g.gateway: g.verdict for g in model.gateways}
    assert verdicts == dict.fromkeys(("G0", "G1", "G2", "G3", "G4"), GatewayVerdict.PASSED)
    assert all(c.assessed for c in model.categories), model.categories
    records = read_evidence([out / "evidence.jsonl"]).records
    judged = [r for r in records if r.scenario is not None and "garbage" in r.metrics]
    (g4,) = [r for r in records if r.gate == "G4-GARBAGE-001"]
    garbage = sum(1 for r in judged if r.metrics["garbage"])
    assert judged and g4.metrics["outputs"] == len(judged) and g4.metrics["garbage"] == garbage
    assert garbage / len(judged) <= 0.25


def test_init_playbook_asks_its_own_prompts(ran) -> None:  # type: ignore[no-untyped-def]
    """Every explicit scenario init wrote ran, named by its line in the file init wrote."""
    written, _result, out = ran
    records = read_evidence([out / "evidence.jsonl"]).records
    explicit = [r.scenario for r in records if r.scenario is not None and r.scenario.line]
    book = api.load([written.path]).playbooks[0]
    wanted = {(s.name, s.source.line) for s in book.scenarios}
    assert wanted and {(s.name, s.line) for s in explicit} == wanted
    assert all(s.file is not None and Path(s.file).name == written.path.name for s in explicit)
