"""The reader registry: every engine name leads to a module whose ``READER`` is a :class:`Reader` of that name,
declaring what it can do; :func:`evtrack.reading.read_file` acts on those declarations. The BinXML decoding the
guard needs comes from :mod:`evtrack.sources.binxml`, not from the python-evtx engine."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from evtrack.reading import ENGINES, XML_READER, get_reader, plan_units, read_file, read_inputs
from evtrack.sources.base import InputKind, Reader, ReadPlan


def test_every_engine_module_declares_a_reader_of_its_name() -> None:
    for name, module in ENGINES.items():
        reader = importlib.import_module(module).READER
        assert isinstance(reader, Reader)
        assert reader.name == name
        assert get_reader(InputKind.EVTX, name) is reader
    xml = importlib.import_module(XML_READER).READER
    assert isinstance(xml, Reader) and xml.name == "xml"
    assert get_reader(InputKind.XML, "python-evtx") is xml


def test_capabilities_are_declared_on_the_reader() -> None:
    declared = {name: (reader.fills_coverage, reader.skips_observed, reader.reads_ranges)
                for name, reader in ((n, get_reader(InputKind.EVTX, n)) for n in ENGINES)}
    assert declared == {"evtx": (True, True, True), "python-evtx": (True, True, False)}
    xml = get_reader(InputKind.XML, "evtx")
    assert (xml.fills_coverage, xml.skips_observed, xml.reads_ranges) == (False, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        xml.reads_ranges = True  # type: ignore[misc]


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    folder = tmp_path_factory.mktemp("readers")
    write_sample(folder, users=4, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=3, size_mb=4)
    return folder / "RDSH01-Security.evtx"


def test_read_file_follows_the_declarations(security: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evtrack.reading

    for name in ENGINES:
        assert read_file(security, engine=name).stats.engine == name
    # only an engine that declares it reads ranges of chunks is asked to, or is split between workers
    assert read_file(security, engine="python-evtx", chunks=(0, 2)).error == (
        "this engine cannot read a range of chunks")
    assert read_file(security, engine="evtx", chunks=(0, 2)).error is None
    monkeypatch.setattr(evtrack.reading, "SPLIT_MIN_CHUNKS", 4)
    assert plan_units([security], "python-evtx", 4) == [(security, None)]
    assert len(plan_units([security], "evtx", 4)) > 1


@pytest.mark.usefixtures("workers_read")
def test_the_plan_travels_to_worker_processes(security: Path) -> None:
    """Workers read with the plan read_inputs was given (pickled with the path; a spawned worker imports the
    catalogue afresh and would otherwise read with its own): a plan asking for no payload yields no rows there."""
    folder = security.parent
    whole = read_inputs([folder], engine="evtx", jobs=1)
    assert whole.table.num_rows > 0
    nothing = read_inputs([folder], engine="evtx", jobs=2, start_method="spawn", plan=ReadPlan())
    assert nothing.table.num_rows == 0 and nothing.records == whole.records > 0
    # every record still counts towards coverage (a log clear is not seen: its payload was not asked for)
    assert [(s.host, s.channel, s.records) for s in nothing.coverage] == [
        (s.host, s.channel, s.records) for s in whole.coverage]


def test_the_guard_does_not_load_the_python_evtx_engine() -> None:
    """The guard (used by the default engine) and the python-evtx engine share BinXML decoding through
    :mod:`evtrack.sources.binxml`: importing the guard loads neither python-evtx nor its engine."""
    code = ("import sys, evtrack.sources.guard, evtrack.sources.pyevtx_rs; "
            "print(sorted(m for m in sys.modules if 'python_evtx' in m or m.split('.')[0] == 'Evtx'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
