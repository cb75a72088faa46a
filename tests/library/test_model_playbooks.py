"""playbooks/models/: one playbook per model of the certification table, each valid and plannable offline."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO, UPSTREAM

from apr_qa import api
from apr_qa.facts import size_category
from apr_qa.plan import build_plan

MODELS = REPO / "playbooks" / "models"
SEED_README = UPSTREAM.parent / "seed-README.md"
BOOKS = sorted(MODELS.glob("*.playbook.yaml"))


def _table_repos() -> set[str]:
    text = SEED_README.read_text(encoding="utf-8")
    table = text.split("<!-- CERTIFICATION_TABLE_START -->")[1].split(
        "<!-- CERTIFICATION_TABLE_END -->"
    )[0]
    return set(re.findall(r"\]\(https://huggingface\.co/([^)]+)\)", table))


def test_one_playbook_per_certification_table_model() -> None:
    repos = [api.load([book]).playbooks[0].model.hf_repo for book in BOOKS]
    assert len(repos) == len(set(repos)) == 12
    assert set(repos) == _table_repos()


@pytest.mark.parametrize("book", BOOKS, ids=lambda p: p.name)
def test_model_playbook_validates_and_plans_offline(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # planning must not need the network
    loaded = api.load([book])
    playbook = loaded.playbooks[0]
    plan = build_plan(loaded.playbooks)
    assert len(plan.cells) == 36 and plan.test_count > 0
    assert playbook.model.size_category is not None
    sources = playbook.metadata["gguf_sources"]
    assert set(sources) == set(playbook.matrix.quantizations)
    assert all(s.endswith(".gguf") and s.count("/") == 2 for s in sources.values())
    code = playbook.model.family is not None and "coder" in playbook.model.family
    oracles = [s.oracle.name for s in playbook.scenarios if s.oracle is not None]
    assert (oracles[0] == "code_syntax") is code  # a code model is asked code first


def test_sizes_follow_the_parameter_counts_in_the_headers() -> None:
    for book in BOOKS:
        text = book.read_text(encoding="utf-8")
        match = re.search(r"([\d.]+)([MB]) parameters", text)
        assert match is not None, book
        count = float(match[1]) * (1e6 if match[2] == "M" else 1e9)
        playbook = api.load([book]).playbooks[0]
        # format_parameters rounds, so only a count away from a category bound is decisive
        assert playbook.model.size_category == size_category(int(count)), book


def test_model_playbooks_are_generated_from_one_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files are what scripts/model_playbooks.py writes (templates and prompts changed
    there reach them), and its --check finds a hand edit (made on a copy)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import model_playbooks
    finally:
        sys.path.pop(0)
    assert model_playbooks.main(["--check"]) == 0
    copy = tmp_path / "models"
    shutil.copytree(MODELS, copy)
    monkeypatch.setattr(model_playbooks, "OUT", copy)
    assert model_playbooks.main(["--check"]) == 0
    book = copy / BOOKS[0].name
    edited = book.read_text(encoding="utf-8").replace("scenario_count: 60", "scenario_count: 61")
    book.write_text(edited, encoding="utf-8")
    assert model_playbooks.main(["--check"]) == 1
