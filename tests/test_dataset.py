"""Events as a hive-partitioned Parquet dataset: same rows back, same report as from the files, coverage kept."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.dataset import SIDECAR, DatasetError, push_down_range, read_events_dataset, write_events_dataset
from evtrack.events import decoded, encoded_schema
from evtrack.pipeline import source_from_read
from evtrack.reading import read_inputs
from evtrack.report import STATUS_UNKNOWN
from evtrack.synth import write_sample
from evtrack.usage import ReportSettings, ReportSource, build_report

PINNED = datetime(2024, 6, 1, tzinfo=timezone.utc)
SETTINGS = ReportSettings(installed=3, created_at=PINNED)
_KEY = ["host", "channel", "record_id", "time", "source"]

#: The DuckDB query docs/fleet-scale.md gives for the monthly distinct-user count (kept in step by this test).
DUCKDB_MONTHLY = r"""
SELECT month, count(DISTINCT split_part(lower(domain), '.', 1) || '\' || lower("user")) AS users
FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)
WHERE rdp AND "user" IS NOT NULL
GROUP BY month ORDER BY month
"""


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "logs"
    write_sample(folder, users=5, hosts=2, start=date(2024, 1, 1), end=date(2024, 3, 31), seed=11)
    return folder


@pytest.fixture(scope="module")
def source(logs: Path) -> ReportSource:
    return source_from_read(read_inputs([logs]))


def _rows(table: Any) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: tuple(str(row[k]) for k in _KEY))


@pytest.mark.parametrize("by_host", [False, True])
def test_dataset_round_trips_and_gives_the_same_report(source: ReportSource, tmp_path: Path, by_host: bool) -> None:
    written = write_events_dataset(source, tmp_path / "ds", by_host=by_host)
    assert written.rows == source.table.num_rows
    assert written.partitions[0] == ("month=2024-01/host=RDSH01.contoso.local" if by_host else "month=2024-01")
    back = read_events_dataset(tmp_path / "ds")
    assert back.has_coverage
    assert back.source.table.schema == encoded_schema()  # as a report reads it; the values are the table's
    assert decoded(back.source.table).schema == source.table.schema
    assert _rows(back.source.table) == _rows(source.table)
    assert build_report(back.source, SETTINGS).to_dict() == build_report(source, SETTINGS).to_dict()


def test_pandas_reads_the_same_rows(source: ReportSource, tmp_path: Path) -> None:
    import pandas as pd

    write_events_dataset(source, tmp_path / "ds", by_host=True)
    frame = pd.read_parquet(tmp_path / "ds")
    assert len(frame) == source.table.num_rows
    assert sorted(frame["month"].astype(str).unique()) == ["2024-01", "2024-02", "2024-03"]
    expected = source.table.to_pandas()
    # Sort on every column: re-exports repeat (host, channel, record_id, time) from another source file.
    key = list(expected.columns)
    left = frame[expected.columns].astype(str).sort_values(key).reset_index(drop=True)
    right = expected.astype(str).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)


def test_duckdb_reads_the_same_rows_and_the_documented_query(source: ReportSource, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")  # not a dependency: checked where it is installed
    write_events_dataset(source, tmp_path / "ds")
    root = (tmp_path / "ds").as_posix()
    connection = duckdb.connect()
    count = connection.execute(f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)")
    assert count.fetchall() == [(source.table.num_rows,)]
    monthly = dict(connection.execute(DUCKDB_MONTHLY.format(root=root)).fetchall())
    report = build_report(source, SETTINGS)
    # the generated logs name users as CONTOSO\alice and contoso.local\alice: the query folds the FQDN to its first
    # label, which agrees with evtrack's identity linking here (it need not in general: see docs/fleet-scale.md)
    assert monthly == {w.label: w.users for w in report.windows}
    assert DUCKDB_MONTHLY.strip() in (Path(__file__).parents[1] / "docs" / "fleet-scale.md").read_text()


def test_without_the_sidecar_every_window_is_unknown_not_zero(source: ReportSource, tmp_path: Path) -> None:
    write_events_dataset(source, tmp_path / "ds")
    (tmp_path / "ds" / SIDECAR).unlink()
    back = read_events_dataset(tmp_path / "ds")
    assert not back.has_coverage
    report = build_report(back.source, SETTINGS)
    assert report.windows and {w.status for w in report.windows} != {"complete"}
    assert all(w.users is None for w in report.windows if w.status == STATUS_UNKNOWN)
    assert not report.coverage_complete


def test_push_down_keeps_the_period_windows(source: ReportSource, tmp_path: Path) -> None:
    write_events_dataset(source, tmp_path / "ds")
    settings = ReportSettings(installed=3, created_at=PINNED, start=date(2024, 3, 20), end=date(2024, 3, 31))
    time_range = push_down_range(datetime(2024, 3, 20, tzinfo=timezone.utc), datetime(2024, 4, 1, tzinfo=timezone.utc))
    pushed = read_events_dataset(tmp_path / "ds", time_range=time_range)
    assert 0 < pushed.rows < source.table.num_rows
    full = build_report(source, settings)
    part = build_report(pushed.source, settings)
    assert [(w.label, w.users, w.status, w.sessions) for w in part.windows] == \
        [(w.label, w.users, w.status, w.sessions) for w in full.windows]
    assert part.curve == full.curve


def test_refuses_a_folder_that_is_not_a_dataset(source: ReportSource, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not an evtrack events dataset"):
        write_events_dataset(source, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    write_events_dataset(source, tmp_path / "ds")
    write_events_dataset(source, tmp_path / "ds", by_host=True)  # an evtrack dataset is replaced whole
    assert json.loads((tmp_path / "ds" / SIDECAR).read_text())["partitioning"] == ["month", "host"]
    assert not list(tmp_path.glob(".ds*"))
    with pytest.raises(DatasetError, match="no such folder"):
        read_events_dataset(tmp_path / "absent")


def test_cli_events_dataset_and_report_from_it(logs: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    target = str(tmp_path / "ds") + "/"
    written = runner.invoke(app, ["events", str(logs), "-f", "parquet", "-o", target, "--partition-by", "host"])
    assert written.exit_code == 0, written.output
    assert "coverage in _evtrack_coverage.json" in written.output
    assert (tmp_path / "ds" / SIDECAR).is_file()
    pinned = ["-f", "json", "--created-at", "2024-06-01", "-q"]
    from_dataset = runner.invoke(app, ["report", "--events", str(tmp_path / "ds"), *pinned])
    from_files = runner.invoke(app, ["report", str(logs), *pinned])
    assert from_dataset.exit_code == from_files.exit_code == 0
    assert from_dataset.stdout == from_files.stdout
    both = runner.invoke(app, ["report", str(logs), "--events", str(tmp_path / "ds")])
    assert both.exit_code == 1 and "--events reads a dataset" in both.output
    csv_dir = runner.invoke(app, ["events", str(logs), "-o", target])
    assert csv_dir.exit_code == 1 and "needs --format parquet" in csv_dir.output
