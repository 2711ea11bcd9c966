"""Coverage-guided fuzzing of every reader with atheris (optional: `pip install atheris`).

    python benchmarks/fuzz_atheris.py -atheris_runs=200000 -max_total_time=600 [CORPUS_DIR]

The seeds are small generated logs (one chunk each) and XML exports; libFuzzer mutates them guided by the
coverage of evtrack's readers. Every input must either yield records or counted, named issues: any other
exception is a crash, and libFuzzer saves the input (crash-*) for the regression corpus (tests/fuzz_corpus).
The Hypothesis fuzzing in tests/test_fuzz.py and benchmarks/fuzz.py runs without atheris.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from evtrack.catalogue import read_plan
    from evtrack.errors import SourceError
    from evtrack.sources.base import FileStats
    from evtrack.sources.pyevtx_rs import read_pyevtx_rs
    from evtrack.sources.python_evtx import read_python_evtx
    from evtrack.sources.xmlfile import read_xml

WORK = Path(tempfile.mkdtemp(prefix="evtrack-atheris-"))
TARGET = WORK / "input"
PLAN = read_plan()


def _seeds(folder: Path) -> None:
    """One-chunk .evtx seeds cut from a generated fleet, and an XML export."""
    from evtrack.synth import write_sample

    logs = WORK / "logs"
    write_sample(logs, users=3, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 7), seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(logs.glob("*.evtx")):
        (folder / path.name).write_bytes(path.read_bytes()[: 0x1000 + 0x10000])
    (folder / "export.xml").write_bytes(
        b'<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><EventID>4624</EventID>'
        b'<TimeCreated SystemTime="2024-01-02T09:00:00.0000000Z"/><EventRecordID>7</EventRecordID>'
        b"<Channel>Security</Channel><Computer>RDSH01</Computer></System><EventData>"
        b'<Data Name="TargetUserName">alice</Data><Data Name="LogonType">10</Data></EventData></Event>'
    )


def one_input(data: bytes) -> None:
    TARGET.write_bytes(data)
    readers = [read_xml] if data.lstrip()[:1] == b"<" else [read_pyevtx_rs, read_python_evtx]
    for reader in readers:
        stats = FileStats(TARGET)
        try:
            for _ in reader(TARGET, stats, plan=PLAN):
                pass
        except SourceError:
            pass  # a file that cannot be opened at all: named, not a crash


def main() -> None:
    corpus = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if not corpus:
        seeds = WORK / "corpus"
        _seeds(seeds)
        sys.argv.append(str(seeds))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
