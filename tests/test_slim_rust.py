"""Slim reading with the default engine skips repeated network/service logons before decoding them: the rows,
the accounts they lend to identity linking, and the coverage must be exactly what reading everything gives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from evtrack.events import needed_for_report
from evtrack.reading import ReadResult, read_inputs

from .conftest import SHARED


def _kept(result: ReadResult) -> list[tuple[object, ...]]:
    return sorted(tuple(str(v) for v in row.values()) for row in result.table.to_pylist() if needed_for_report(row))


def _accounts(result: ReadResult) -> set[tuple[str, str | None, str | None, str]]:
    return {(row["user"], row["domain"], row["sid"], row["host"]) for row in result.table.to_pylist()
            if not needed_for_report(row) and row["user"] is not None}


def _check(inputs: list[Path]) -> None:
    full = read_inputs(inputs)
    slim = read_inputs(inputs, slim=True)
    assert _kept(slim) == _kept(full)
    assert slim.table.num_rows == len(_kept(full))
    assert set(slim.observations) == _accounts(full)
    assert slim.coverage == full.coverage
    assert [(s.path, s.records, s.skipped, dict(s.per_channel)) for s in slim.files] == [
        (s.path, s.records, s.skipped, dict(s.per_channel)) for s in full.files]


def test_generated_logs(tmp_path: Path) -> None:
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=8, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=5, size_mb=4)
    _check([tmp_path])
    # and the skipping really happens: most network logons are repeats of an account already yielded
    from evtrack.catalogue import read_plan
    from evtrack.coverage import CoverageBuilder
    from evtrack.sources.base import FileStats, one_by_one
    from evtrack.sources.pyevtx_rs import read_pyevtx_rs

    plan = read_plan()
    path = tmp_path / "RDSH01-Security.evtx"
    every = list(one_by_one(read_pyevtx_rs(path, FileStats(path), plan=plan, coverage=CoverageBuilder())))
    slim = list(one_by_one(read_pyevtx_rs(path, FileStats(path), plan=plan, coverage=CoverageBuilder(), slim=True)))
    logons = [e for e in every if e.event_id in (4624, 4634) and e.data.get("LogonType") not in ("7", "10", "12")]
    assert len(logons) > 100
    assert len(every) - len(slim) > len(logons) // 2


@pytest.mark.shared
def test_real_logs() -> None:
    _check([SHARED])


def test_a_damaged_record_with_any_json_type_is_text() -> None:
    """Fuzzing finding: a mutated record rendered ``"Channel":5``; the general path handed the int on and
    coverage raised AttributeError. Every System field is now the text it would render as."""
    from evtrack.catalogue import read_plan
    from evtrack.coverage import CoverageBuilder
    from evtrack.sources.pyevtx_rs import _event_from_json

    text = ('{"Event":{"System":{"Provider":{"#attributes":{"Name":7}},"EventID":21,"TimeCreated":{"#attributes":'
            '{"SystemTime":"2024-01-02T03:04:05.000006Z"}},"EventRecordID":"12","Channel":5,"Computer":["a","b"]},'
            '"UserData":{"EventXML":{"User":"CONTOSO\\\\alice","Address":"10.0.0.1"}}}}')
    event = _event_from_json(text, read_plan().payload_keys)
    assert event.data == {"User": "CONTOSO\\alice", "Address": "10.0.0.1"}
    assert (event.channel, event.computer, event.provider, event.record_id) == ("5", "a,b", "7", 12)
    assert event.time_us == 1704164645000006
    builder = CoverageBuilder()
    builder.add(event)  # raised AttributeError before
    assert builder.spans() == []  # channel "5" is not one evtrack covers
