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

import re
from pathlib import Path

import pytest

from apr_qa import api
from apr_qa.evidence import read_evidence
from apr_qa.fixtures import fixture_path
from apr_qa.library.write import Written, write_playbook
from apr_qa.score import GatewayVerdict

pytestmark = pytest.mark.slow


_RUNS: dict[str, tuple[Written, api.RunResult, Path]] = {}


def _ran(name: str, factory: pytest.TempPathFactory) -> tuple[Written, api.RunResult, Path]:
    """init's default playbook for a fixture, run once per session."""
    if name not in _RUNS:
        where = factory.mktemp(name)
        written = write_playbook(str(fixture_path(name)), where / "p.yaml")
        assert written.template == "full"
        # Two workers, each with one of the two cores (apr_qa.backends.threads).
        config = api.RunConfig(output_dir=where / "out", workers=2)
        result = api.run(api.load([written.path]), config)
        _RUNS[name] = written, result, where / "out"
    return _RUNS[name]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2", "tiny-qa"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _ran(request.param, tmp_path_factory)


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


REPO = Path(__file__).resolve().parents[2]


def _quick_start() -> tuple[str, list[str]]:
    """The README quick start's first command and its printed verdict's lines."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", section, flags=re.S)
    command = next(line for line in blocks[0].splitlines() if line.startswith("pip install -e ."))
    return command, blocks[1].splitlines()


def test_readme_quick_start_is_init_then_run_and_its_verdict_is_a_real_one(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _written, result, _out = _ran("tiny-llama", tmp_path_factory)
    command, verdict = _quick_start()
    steps = [step.strip() for step in command.split("&&")]
    assert steps[1].startswith("apr-qa init src/apr_qa/fixtures/models/tiny-llama -o ")
    playbook = steps[1].split(" -o ")[1]
    assert steps[2] == f"apr-qa run {playbook}"
    assert result.report is not None
    (model,) = result.report.run.models
    headline = re.match(r"tiny-llama: MQS (\d+)/1000  grade (\S+)  (\w+)$", verdict[0])
    assert headline is not None
    assert (headline[2], headline[3]) == (model.grade, str(model.status))
    assert verdict[1] == "  gateways: G0 pass  G1 pass  G2 pass  G3 pass  G4 pass"
    shown = dict(re.findall(r"(\w+) (\d+/\d+|n/a)", verdict[2]))
    assert set(shown) == {c.category for c in model.categories} and "n/a" not in shown.values()
