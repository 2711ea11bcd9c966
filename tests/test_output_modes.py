"""Output files get the permissions any program's open() would give them: 0666 less the umask, or the mode an
existing file already has (the atomic write's temp file is 0600, which must not leak into the result)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.output import write_atomic

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
runner = CliRunner()


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_follows_the_umask(tmp_path: Path, umask: None, mask: int, expected: int) -> None:
    os.umask(mask)
    target = tmp_path / "out.csv"
    write_atomic(target, b"a,b\n")
    assert (target.read_bytes(), _mode(target)) == (b"a,b\n", expected)
    assert os.umask(mask) == mask  # reading the umask left it as it was
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind


def test_an_existing_file_keeps_its_mode(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    target = tmp_path / "report.html"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomic(target, b"new")
    assert (target.read_bytes(), _mode(target)) == (b"new", 0o640)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_cli_outputs_follow_the_umask(tmp_path: Path, umask: None, mask: int, expected: int) -> None:
    from evtrack.synth import write_sample

    logs = tmp_path / "logs"
    write_sample(logs, users=2, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 7), seed=4, noise_ratio=0.1)
    os.umask(mask)
    outputs = {
        "report.csv": ["report", str(logs), "-f", "csv", "-q"],
        "report.html": ["report", str(logs), "-f", "html", "-q"],
        "events.csv": ["events", str(logs), "-q"],
        "events.parquet": ["events", str(logs), "-f", "parquet", "-q"],
    }
    for name, args in outputs.items():
        result = runner.invoke(app, [*args, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, (name, result.output)
    result = runner.invoke(app, ["events", str(logs), "-f", "parquet", "-o", str(tmp_path / "dataset") + "/", "-q"])
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "dataset") == expected | (0o111 & ~mask)  # a folder: 0777 less the umask
    assert {_mode(p) for p in (tmp_path / "dataset").rglob("*.parquet")} == {expected}
    sample = tmp_path / "sample"
    result = runner.invoke(app, ["sample", "-o", str(sample), "--users", "1", "--hosts", "1", "--from", "2024-01-01",
                                 "--to", "2024-01-02", "-q"])
    assert result.exit_code == 0, result.output
    written = [tmp_path / name for name in outputs] + sorted(sample.iterdir())
    assert {path.name: _mode(path) for path in written} == {path.name: expected for path in written}
