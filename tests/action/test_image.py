"""The CPU image, built with scripts/build-image (buildah, no daemon) and run as a
GitHub runner runs a Docker action: the workspace, event, summary and output files
mounted where the runner mounts them, the runner's uid, its GITHUB_* environment.

Marked ``image`` and left out of the default run (``-m "not image"`` in pyproject):
the build takes minutes (see bench/README.md). Run with ``pytest -m image tests/action/test_image.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.action.runner import (
    FakeGitHub,
    parse_log,
    pull_request_event,
    push_event,
    read_outputs,
    serve,
)
from tests.action.test_readme_commit import README, git, remote_log
from tests.conftest import REPO

from apr_qa.action.outputs import OUTPUT_NAMES
from apr_qa.action.readme_commit import BOT_NAME
from apr_qa.fixtures import fixture_path
from apr_qa.report.markdown import COMMENT_MARKER

pytestmark = pytest.mark.image

TAG = "apr-qa:cpu-test"
RUNNER_UID = 1001  # the hosted runner's uid, the image's USER
TOKEN = "ghs_imagetesttoken"
BUILDAH = ["buildah", "--storage-driver", os.environ.get("STORAGE_DRIVER", "vfs")]

BOOK = """\
name: tiny-qa
model:
  id: apr-qa/tiny-qa
  path: ../models/tiny-qa
test_matrix: {modalities: [run], backends: [cpu], formats: [gguf], quantizations: [q8_0], scenario_count: 0, max_tokens: 16}
failure_policy: collect-all
scenarios:
  - name: product
    prompt: "Question: What is 6 times 7?\\nAnswer:"
    oracle: arithmetic
    expected: 42
  - name: bees
    prompt: "Question: What do bees make?\\nAnswer:"
    oracle: contains
    value: "::error::pwned"
"""


@pytest.fixture(scope="module")
def image() -> str:
    """Build the image (the base and the wheels are reused when already there).
    APR_QA_IMAGE=TAG runs an image built before instead (the build takes minutes)."""
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.fail(
            "the image tests need buildah and debootstrap (apt-get install buildah debootstrap)"
        )
    if os.environ.get("APR_QA_IMAGE"):
        return os.environ["APR_QA_IMAGE"]
    subprocess.run([str(REPO / "scripts" / "build-image"), TAG], cwd=REPO, check=True)
    return TAG


def _config(image: str) -> dict[str, object]:
    done = subprocess.run(
        [*BUILDAH, "inspect", "--type", "image", image], capture_output=True, text=True, check=True
    )
    config: dict[str, object] = json.loads(done.stdout)["OCIv1"]["config"]
    return config


@dataclass
class Step:
    code: int
    log: str
    summary: str
    outputs: dict[str, str]


def _workspace(root: Path) -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "tiny-qa.yaml").write_text(BOOK)
    model = root / "models" / "tiny-qa"
    shutil.copytree(fixture_path("tiny-qa"), model)
    for extra in model.glob("*.gguf"):
        if not extra.name.endswith("q8_0.gguf"):
            extra.unlink()
    (root / "README.md").write_text(README)
    (root / ".gitignore").write_text("apr-qa-report/\n.cache/\n")
    return root


def _step(image: str, root: Path, event: str, payload: dict[str, object], **extra: str) -> Step:
    """One action step: a fresh container, the runner's mounts and environment."""
    home = root.parent / "runner"
    for sub in ("home", "workflow", "file_commands"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "workflow" / "event.json").write_text(json.dumps(payload))
    for name in ("step_summary", "set_output"):
        (home / "file_commands" / name).write_text("")
    subprocess.run(["chown", "-R", f"{RUNNER_UID}:{RUNNER_UID}", str(root.parent)], check=True)
    env = {
        "HOME": "/github/home",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": "/github/workflow/event.json",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "RUNNER_TEMP": "/github/home",
        "GITHUB_REPOSITORY": "octo/models",
        "GITHUB_RUN_ID": "99",
        "GITHUB_REF_NAME": "main",
        "INPUT_PLAYBOOKS": "playbooks/tiny-qa.yaml",
        "INPUT_GITHUB-TOKEN": TOKEN,
        **extra,
    }
    config = _config(image)
    assert config["User"] == f"{RUNNER_UID}:{RUNNER_UID}"  # the image's own user runs it
    entrypoint = config["Entrypoint"]
    assert isinstance(entrypoint, list)
    ctr = subprocess.run([*BUILDAH, "from", image], capture_output=True, text=True, check=True)
    name = ctr.stdout.strip()
    try:
        command = [*BUILDAH, "run", "--isolation", "chroot", "--workingdir", "/github/workspace"]
        command += ["--volume", f"{root}:/github/workspace"]
        command += ["--volume", f"{root.parent}:{root.parent}"]  # the bare remote, by its path
        for sub in ("home", "workflow", "file_commands"):
            command += ["--volume", f"{home / sub}:/github/{sub}"]
        for key, value in env.items():
            command += ["--env", f"{key}={value}"]
        # The image's own entrypoint, as `docker run` would start it.
        done = subprocess.run(
            [*command, name, "--", *entrypoint],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run([*BUILDAH, "rm", name], capture_output=True, check=False)
    files = home / "file_commands"
    return Step(
        done.returncode,
        done.stdout,
        (files / "step_summary").read_text(encoding="utf-8"),
        read_outputs(files / "set_output"),
    )


@pytest.fixture(scope="module")
def pull_request(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Step], FakeGitHub]]:
    root = _workspace(tmp_path_factory.mktemp("image-pr") / "workspace")
    github = FakeGitHub("octo/models", TOKEN)
    for url in serve(github):
        steps = [
            _step(
                image,
                root,
                "pull_request",
                pull_request_event(5, "octo/models"),
                GITHUB_API_URL=url,
            )
            for _ in range(2)
        ]
        yield steps, github


def test_pull_request_summary_outputs_annotations_and_one_comment(
    pull_request: tuple[list[Step], FakeGitHub],
) -> None:
    steps, github = pull_request
    first = steps[0]
    assert first.code == 1, first.log  # the bees scenario cannot pass
    assert "| Model | MQS | Grade | Status |" in first.summary
    assert (
        f"| apr-qa/tiny-qa | {first.outputs['mqs']} | {first.outputs['grade']} |" in first.summary
    )
    assert tuple(first.outputs) == OUTPUT_NAMES
    commands = parse_log(first.log)
    errors = [c for c in commands if c.name == "error"]
    assert errors and all(c.properties["file"] == "playbooks/tiny-qa.yaml" for c in errors)
    assert all(c.message != "pwned" for c in commands)
    assert TOKEN not in first.log.replace(f"::add-mask::{TOKEN}", "")
    (comment,) = github.comments[5]
    assert comment["body"].startswith(COMMENT_MARKER)


@pytest.fixture(scope="module")
def pushes(image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Step], Path]:
    base = tmp_path_factory.mktemp("image-push")
    remote = base / "remote.git"
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    root = base / "workspace"
    git(base, "clone", "--quiet", str(remote), str(root))
    _workspace(root)
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "start")
    git(root, "push", "--quiet", "origin", "main")
    steps = [
        _step(image, root, "push", push_event("octo/models"), **{"INPUT_UPDATE-README": "true"})
        for _ in range(2)
    ]
    return steps, remote


def test_two_push_runs_make_exactly_one_readme_commit(pushes: tuple[list[Step], Path]) -> None:
    steps, remote = pushes
    log = remote_log(remote)
    assert [a for a, _ in log].count(BOT_NAME) == 1, (log, steps[0].log, steps[1].log)
    assert "apr-qa/tiny-qa" in git(remote, "show", "main:README.md")
