"""The shipped templates: each documented, each valid and plannable, listed by `apr-qa templates`."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from apr_qa import api
from apr_qa.cli import cli
from apr_qa.errors import UsageError
from apr_qa.library.catalogue import TEMPLATE_NAMES, get_template, templates
from apr_qa.plan import build_plan

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "src" / "apr_qa" / "library" / "templates"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_validates_and_plans(name: str) -> None:
    path = TEMPLATES / f"{name}.playbook.yaml"
    loaded = api.load([path])
    plan = build_plan(loaded.playbooks)
    assert plan.cells, f"{name}: no cell planned"
    assert plan.test_count > 0


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_documents_cost_and_proof(name: str) -> None:
    template = get_template(name)
    header = "\n".join(template.header)
    assert template.summary.startswith(f"{name}: ")
    assert "Cost:" in header and "Proves:" in header


def test_templates_grow_from_quick_to_full() -> None:
    """quick < ci < mvp in cells; full plans the most tests: the names say what they cost."""
    sizes = {}
    for template in templates():
        plan = build_plan(api.load([TEMPLATES / f"{template.name}.playbook.yaml"]).playbooks)
        sizes[template.name] = (len(plan.cells), plan.test_count)
    assert sizes["quick"][0] < sizes["ci"][0] < sizes["mvp"][0] <= sizes["full"][0]
    assert max(tests for _, tests in sizes.values()) == sizes["full"][1]


def test_only_full_records_golden_and_every_template_but_quick_checks_comp() -> None:
    for template in templates():
        data = api.load([TEMPLATES / f"{template.name}.playbook.yaml"]).playbooks[0]
        formats = {str(f) for f in data.matrix.formats}
        assert ("golden" in template.text) is (template.name == "full")
        assert ("gguf" in formats) is (template.name != "quick")


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="quick, ci, mvp, full"):
        get_template("fast")


def test_templates_command_lists_one_line_each() -> None:
    result = CliRunner().invoke(cli, ["templates"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(TEMPLATE_NAMES)


def test_templates_are_package_data_and_top_level_playbooks_links_to_them() -> None:
    """One source of truth: the wheel ships src/apr_qa/library/templates, and the
    repository's playbooks/templates is that folder, not a copy."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["apr_qa"]
    for path in TEMPLATES.glob("*.playbook.yaml"):
        relative = path.relative_to(REPO / "src" / "apr_qa").as_posix()
        assert any(fnmatch.fnmatch(relative, p.replace("**/", "*/")) for p in patterns), relative
    top = REPO / "playbooks" / "templates"
    assert top.is_symlink() and top.resolve() == TEMPLATES.resolve()
