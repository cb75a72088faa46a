"""Evidence: streamed JSONL that keeps what it was given and reads back what it can."""

from __future__ import annotations

from pathlib import Path

from apr_qa.evidence import EvidenceWriter, Outcome, Record, now_utc, read_evidence


def _record(i: int, output: str | None = None) -> Record:
    return Record(
        run_id="r",
        record_id=f"r-{i}",
        gate="F-A1-001",
        category="QUAL",
        severity="P1",
        outcome=Outcome.CORROBORATED,
        reason="ok",
        model="m",
        output=output,
        timestamp=now_utc(),
    )


def test_hostile_output_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    nasty = "a\udc80b é \x00\x1b[31m <script>alert(1)</script> \u2028"
    with EvidenceWriter(path) as writer:
        writer.write(_record(1, nasty))
    (back,) = read_evidence([path]).records
    assert back.output == nasty


def test_each_record_is_on_disk_before_the_next_is_decided(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EvidenceWriter(path)
    writer.write(_record(1))
    assert len(read_evidence([path]).records) == 1  # flushed, though the writer is still open
    writer.write(_record(2))
    assert len(read_evidence([path]).records) == 2
    writer.close()


def test_long_output_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EvidenceWriter(path) as writer:
        writer.write(_record(1, "x" * 100_000))
    (back,) = read_evidence([path]).records
    assert back.output is not None and len(back.output) < 5000
    assert back.output.endswith("[truncated]")
