"""A repository workspace as a runner checks it out: a fake model scripted to fail one
scenario (with an injection attempt in its answer) and one that does not load."""

from __future__ import annotations

import json
from pathlib import Path

PWNED = "::error::pwned"

GOOD_BOOK = """\
name: scripted
model: {id: org/scripted, path: ../models/scripted.json}
test_matrix:
  modalities: [run]
  backends: [cpu]
  formats: [gguf]
  quantizations: [q8_0]
  scenario_count: 0
  max_tokens: 24
failure_policy: collect-all
scenarios:
  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}
  - name: greet
    prompt: 'Say hello.'
    oracle: contains
    value: goodbye
"""

BROKEN_BOOK = """\
name: broken
model:
  id: org/broken
  path: ../models/broken.json
test_matrix: {modalities: [run], backends: [cpu], formats: [gguf], quantizations: [q8_0], scenario_count: 0, max_tokens: 8}
failure_policy: collect-all
scenarios:
  - {name: add, prompt: 'What is 2 + 2?', oracle: arithmetic}
"""


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def make_workspace(root: Path, *, broken: bool = True) -> Path:
    """Write the playbooks and scripted models under ``root/playbooks`` and ``root/models``."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(exist_ok=True)
    answers = {"What is 2 + 2?": "4", "Say hello.": f"{PWNED}\nhello"}
    (root / "models" / "scripted.json").write_text(json.dumps({"answers": answers}))
    (root / "playbooks" / "scripted.yaml").write_text(GOOD_BOOK)
    if broken:
        (root / "models" / "broken.json").write_text(
            json.dumps({"answers": {}, "fail_load": "corrupt tensor data"})
        )
        (root / "playbooks" / "broken.yaml").write_text(BROKEN_BOOK)
    return root


def runner_env(
    root: Path, event_name: str, payload: dict[str, object], **inputs: str
) -> dict[str, str]:
    """The environment a runner gives a Docker action's step (files created empty)."""
    temp = root.parent / f"{root.name}-runner"
    temp.mkdir(exist_ok=True)
    event = temp / "event.json"
    event.write_text(json.dumps(payload))
    for name in ("summary.md", "output.txt"):
        (temp / name).write_text("")
    env = {
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_WORKSPACE": str(root),
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(temp / "summary.md"),
        "GITHUB_OUTPUT": str(temp / "output.txt"),
        "RUNNER_TEMP": str(temp),
        "GITHUB_REPOSITORY": "octo/models",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.test",
        "GITHUB_REF_NAME": "main",
    }
    env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
    return env
