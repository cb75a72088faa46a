"""Markdown job summary and PR comment: content, escaping, size limits; terminal verdict."""

from __future__ import annotations

from fixture_runs import XSS, clean_run, mutant_run
from scoring_records import gateways_passed, rec

from apr_qa.evidence import Outcome
from apr_qa.report.markdown import COMMENT_MARKER, job_summary, pr_comment
from apr_qa.report.terminal import verdict_text
from apr_qa.score import score


def test_job_summary_shows_verdicts_and_failures() -> None:
    text = job_summary(score(clean_run() + mutant_run()))
    assert "| org/clean | 1000 | A+ | ✅ Certified |" in text
    assert "| org/mutant | 0 | F | ❌ Blocked |" in text
    assert "**Halted:** not run: stop-on-p0 after G2-INFER-001" in text
    assert "(playbooks/tiny.yaml:21)" in text
    assert XSS in text  # inside a fenced block
    assert "\x00" not in text and "\x1b" not in text
    assert "Z-UNKNOWN-001" in text and "not scored" in text


def test_fence_cannot_be_closed_by_output() -> None:
    records = [*gateways_passed(), rec("F-A1-001", Outcome.FALSIFIED, output="```\n# injected")]
    text = job_summary(score(records))
    assert "````text\n  ```\n  # injected\n  ````" in text


def _many_failures(n: int) -> list:  # type: ignore[type-arg]
    records = gateways_passed()
    records += [
        rec("F-A1-001", Outcome.FALSIFIED, scenario=f"s{i}", output="x" * 2000, reason="wrong")
        for i in range(n)
    ]
    return records


def test_job_summary_is_capped_with_an_n_more_line() -> None:
    run = score(_many_failures(3000))
    text = job_summary(run)
    assert len(text.encode("utf-8")) <= 1024 * 1024
    shown = text.count("- **P1 F-A1-001**")
    assert 0 < shown < 3000
    assert f"… {3000 - shown} more failures not shown" in text


def test_pr_comment_is_capped_and_marked() -> None:
    run = score(_many_failures(3000))
    text = pr_comment(run)
    assert text.startswith(COMMENT_MARKER)
    assert len(text) <= 60_000
    shown = text.count("- **P1 F-A1-001**")
    assert f"… {3000 - shown} more failures not shown" in text
    small = pr_comment(score(_many_failures(3)))
    assert small.count("- **P1 F-A1-001**") == 3 and "more failures" not in small


def test_empty_run_says_pending() -> None:
    assert "nothing was scored" in job_summary(score([]))
    assert "Pending" in verdict_text(score([]))


def test_terminal_verdict() -> None:
    text = verdict_text(
        score(clean_run() + mutant_run()), reports={"html": __import__("pathlib").Path("o/r.html")}
    )
    assert "org/clean: MQS 1000/1000  grade A+  Certified" in text
    assert "org/mutant: MQS 0/1000  grade F  Blocked" in text
    assert "G2 FAIL" in text and "halted: not run: stop-on-p0" in text
    assert "✗ P0 G2-INFER-001" in text
    assert "\x1b" not in text and "\x00" not in text
    assert text.splitlines()[-1].strip() == "html: o/r.html"
    assert "FAIL (CI threshold: gateways held, grade ≥ C); status Blocked" in text
