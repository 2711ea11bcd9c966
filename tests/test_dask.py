"""Ingest on a Dask cluster: the same store and report as a local ingest, also when a worker dies mid-ingest."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evtrack.distributed import DASK_HINT, DaskScanner, ScanTuple, dask_client, is_url, scan_file
from evtrack.errors import ConfigError
from evtrack.pipeline import StoreInput, run
from evtrack.sources.base import ReadPlan
from evtrack.store import STATUS_ALREADY, STATUS_FAILED, STATUS_INGESTED, Store
from evtrack.synth import write_sample
from evtrack.usage import ReportSettings

SETTINGS = ReportSettings(installed=3, created_at=datetime(2024, 6, 1, tzinfo=timezone.utc))
_COLUMNS = "host, channel, record_id, time, event_id, user, domain, sid, address, logon_id, rdp, kind"


def test_missing_dask_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # `import dask.distributed` now fails
    with pytest.raises(ConfigError, match=r"pip install 'evtrack\[dask\]'") as caught, dask_client():
        pass
    assert str(caught.value) == DASK_HINT


@pytest.mark.parametrize(
    ("text", "url"),
    [("s3://bucket/logs", True), ("abfs://c@acct/x", True), ("file:///tmp/x", True), ("C:\\logs", False),
     ("\\\\server\\share\\logs", False), ("logs/a.evtx", False), ("c://x", False)],
)
def test_is_url(text: str, url: bool) -> None:
    assert is_url(text) is url


# -- on a local cluster -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "logs"
    write_sample(folder, users=5, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=7)
    return folder


def _contents(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    db = store._db
    events = db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY host, channel, record_id, time").fetchall()
    spans = db.execute(
        "SELECT f.sha256, s.host, s.channel, s.first_us, s.last_us, s.records, s.gaps, s.record_ids, s.record_times "
        "FROM spans s JOIN files f ON f.id = s.file_id ORDER BY 1, 2, 3"
    ).fetchall()
    files = sorted(row[0] for row in db.execute("SELECT sha256 FROM files"))
    return events, spans, files


def _local(tmp_path: Path, logs: Path) -> Store:
    store = Store.open(tmp_path / "local.sqlite3")
    store.ingest([logs])
    return store


def test_cluster_ingest_equals_local_ingest(client: Any, logs: Path, tmp_path: Path) -> None:
    with _local(tmp_path, logs) as local, Store.open(tmp_path / "dask.sqlite3") as remote:
        result = remote.ingest([logs], scanner=DaskScanner(client))
        assert [f.status for f in result.files] == [STATUS_INGESTED] * 7
        assert [i.path.name for i in result.ignored] == ["ground_truth.json"]
        assert _contents(remote) == _contents(local)
        assert _without_ingest_times(run(StoreInput(remote.path), SETTINGS).to_dict()) == \
            _without_ingest_times(run(StoreInput(local.path), SETTINGS).to_dict())
        again = remote.ingest([logs], scanner=DaskScanner(client))
        assert {f.status for f in again.files} == {STATUS_ALREADY}
        assert again.events_added == 0


def _without_ingest_times(report: dict[str, Any]) -> dict[str, Any]:
    """A report from a store, less when each input was ingested (two stores ingest at different moments)."""
    assert all(item.pop("ingested_at") is not None for item in report["inputs"])
    return report


def _die_once(marker: Path, victim: str, location: str, engine: str, verify: bool, known: frozenset[str],
              plan: ReadPlan) -> ScanTuple:
    """Kill the worker process the first time it reads ``victim`` (as a lost machine would)."""
    if location.endswith(victim) and not marker.exists():
        marker.touch()
        os._exit(1)
    return scan_file(location, engine, verify, known, plan)


def test_a_worker_killed_mid_ingest_loses_and_duplicates_nothing(client: Any, logs: Path, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    task = functools.partial(_die_once, marker, "RDSH01-Security.evtx")
    with _local(tmp_path, logs) as local, Store.open(tmp_path / "dask.sqlite3") as remote:
        result = remote.ingest([logs], scanner=DaskScanner(client, task=task))
        assert marker.exists()  # the worker did die
        assert [f.status for f in result.files] == [STATUS_INGESTED] * 7
        assert _contents(remote) == _contents(local)
    client.wait_for_workers(2, timeout=30)  # the nanny brings it back for the next test


def _always_fails(victim: str, location: str, engine: str, verify: bool, known: frozenset[str],
                  plan: ReadPlan) -> ScanTuple:
    if location.endswith(victim):
        raise OSError("the share went away")
    return scan_file(location, engine, verify, known, plan)


def test_failures_are_reported_per_file(client: Any, logs: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.evtx"
    junk.write_bytes(b"ElfFile\x00" + os.urandom(5000))
    task = functools.partial(_always_fails, "RDSH02-LocalSessionManager.evtx")
    files = sorted(logs.glob("*.evtx"))
    with Store.open(tmp_path / "dask.sqlite3") as store:
        result = store.ingest([*files, junk, tmp_path / "missing.evtx"], scanner=DaskScanner(client, retries=1,
                                                                                             task=task))
    by_name = {f.path.name: f for f in result.files}
    assert by_name["missing.evtx"].status == STATUS_FAILED
    failed = by_name["RDSH02-LocalSessionManager.evtx"]
    assert failed.status == STATUS_FAILED
    assert failed.error is not None and "the share went away" in failed.error
    assert by_name["junk.evtx"].status in (STATUS_INGESTED, STATUS_FAILED)  # bad chunks are reported, not fatal
    assert sum(f.status == STATUS_INGESTED for f in result.files if f.path.name.startswith("RDSH")) == 6


def test_file_urls_are_read_through_fsspec(client: Any, logs: Path, tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    url = logs.resolve().as_uri()  # file:///...: the same code path as s3:// or abfs://
    with _local(tmp_path, logs) as local, Store.open(tmp_path / "dask.sqlite3") as remote:
        result = remote.ingest([url], scanner=DaskScanner(client))
        assert len(result.ingested) == 7
        assert all(str(f.path).startswith("file://") for f in result.files)
        assert _contents(remote) == _contents(local)
        stored = {row[0] for row in remote._db.execute("SELECT path FROM files")}
        assert all(path.startswith("file:///") for path in stored)


def test_cli_ingest_with_a_local_cluster(logs: Path, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    from evtrack.cli import app

    runner = CliRunner()
    store = tmp_path / "cli.sqlite3"
    result = runner.invoke(app, ["ingest", str(logs), "--store", str(store), "--executor", "dask", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert "files: 7 ingested, 0 already ingested, 0 failed, 1 ignored" in result.output
    with _local(tmp_path, logs) as local, Store.open(store) as remote:
        assert _contents(remote) == _contents(local)
    refused = runner.invoke(app, ["ingest", str(logs), "--store", str(store), "--scheduler", "tcp://127.0.0.1:1"])
    assert refused.exit_code == 1
    assert "--scheduler needs --executor dask" in refused.output
