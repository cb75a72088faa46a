"""Lock files pin playbooks; validate --locked refuses changed ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import UPSTREAM

from apr_qa.errors import UsageError
from apr_qa.lock import check_locked, read_lock, write_lock
from apr_qa.playbook import load_playbook

BOOK = "name: locked\nmodel: {hf_repo: org/m, formats: [gguf]}\ntest_matrix: {seed: 1}\ndescription: d\n"


def test_upstream_lock_file_loads_and_matches_its_playbooks() -> None:
    lock = read_lock(UPSTREAM / "playbooks/playbook.lock.yaml")
    assert len(lock) == 117
    book = load_playbook(UPSTREAM / "playbooks/models/qwen2.5-coder-1.5b-mvp.playbook.yaml")
    assert check_locked(book, lock, Path("playbook.lock.yaml")) == []


def test_changed_locked_field_is_named(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(BOOK)
    lock_path = tmp_path / "playbook.lock.yaml"
    write_lock(lock_path, [load_playbook(path)])
    lock = read_lock(lock_path)
    assert check_locked(load_playbook(path), lock, lock_path) == []
    path.write_text(BOOK.replace("seed: 1", "seed: 2"))
    (problem,) = check_locked(load_playbook(path), lock, lock_path)
    assert "locked fields changed: test_matrix" in problem.message
    path.write_text(BOOK.replace("description: d", "description: e"))
    (problem,) = check_locked(load_playbook(path), lock, lock_path)
    assert "contents changed" in problem.message


def test_unlocked_playbook_is_refused(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lock_path = tmp_path / "l.yaml"
    write_lock(lock_path, [])
    (problem,) = check_locked(load_playbook(write(BOOK)), read_lock(lock_path), lock_path)
    assert "not in lock file" in problem.message


@pytest.mark.parametrize("text", ["[1, 2]", "entries: 3", "entries: {a: {sha256: 1}}", "{"])
def test_bad_lock_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.lock.yaml"
    path.write_text(text)
    with pytest.raises(UsageError):
        read_lock(path)
