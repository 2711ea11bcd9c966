"""Where a dense report's CPU time goes, per record, in one process (issue 15).

    python benchmarks/breakdown.py FOLDER [--reps N] [--decoders]

Each stage is measured as CPU time of this process (``time.process_time``, best of ``--reps``), so that other
work on the machine disturbs it less than wall time; every stage includes the ones before it:

1. pyevtx-rs alone: ``records_json()`` with one thread, every record's JSON text made and dropped;
2. the reader: :func:`evtrack.sources.pyevtx_rs.read_pyevtx_rs` as a report runs it (coverage filled, slim),
   the wanted records decoded (as :class:`~evtrack.sources.base.RawBatch` runs of columns);
3. :func:`evtrack.reading.read_file`: the rows normalised and built into Arrow batches;
4. :func:`evtrack.usage.build_report` on the table read once (``--jobs 1``).

``--decoders`` adds the other ways there are to decode the records, each timed alone (making the JSON or XML it
reads included): pyevtx-rs's XML (``records()``); one regular expression per record for the System fields and
one search for the payload; the System expression once over 8,192 records joined into one string (``findall``);
Arrow's JSON reader with an explicit schema, 8,192 records a block (a block whose field types differ from the
schema fails: counted); libevtx-python (``pyevtx``, not an evtrack dependency) when it is installed: each
record's identifier, event id, written time, computer, source and strings (records it refuses: counted).
"""

from __future__ import annotations

import argparse
import io
import re
import time
from collections.abc import Callable
from pathlib import Path

BLOCK = 8192
SYSTEM = (r'"EventID":(\d+).*?"SystemTime":"([^"]*)"\}\},"EventRecordID":(\d+)'
          r'.*?"Channel":("(?:[^"\\]|\\.)*"|null),"Computer":("(?:[^"\\]|\\.)*"|null)')
PAYLOAD = re.compile(r'"(?:EventData|EventXML)":\{(.*?)\}')


def _best(reps: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(reps):
        start = time.process_time()
        result = run()
        best = min(best, time.process_time() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--decoders", action="store_true", help="also time the other ways to decode the records")
    args = parser.parse_args()

    import evtx
    import numpy as np
    import pyarrow as pa

    from evtrack import catalogue
    from evtrack.coverage import CoverageBuilder
    from evtrack.pipeline import FilesInput
    from evtrack.reading import read_file
    from evtrack.sources.base import FileStats, RawBatch
    from evtrack.sources.pyevtx_rs import read_pyevtx_rs
    from evtrack.usage import ReportSettings, build_report

    pa.array(np.zeros(1))  # pyarrow's first array imports pandas: not a stage's cost
    files = sorted(args.folder.glob("*.evtx"))
    plan = catalogue.read_plan()

    def bare() -> int:
        return sum(1 for path in files for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())

    def reader() -> int:
        return sum(item.rows if isinstance(item, RawBatch) else 1 for path in files for item in
                   read_pyevtx_rs(path, FileStats(path), plan=plan, coverage=CoverageBuilder(), slim=True))

    def rows() -> int:
        return sum(b.num_rows for path in files for b in read_file(path, slim=True, plan=plan).batches)

    stages = [("pyevtx-rs records_json, 1 thread", *_best(args.reps, bare)),
              ("+ the reader (the wanted records, decoded)", *_best(args.reps, reader)),
              ("+ normalised rows in Arrow batches (read_file)", *_best(args.reps, rows))]
    source = FilesInput([args.folder], jobs=1, slim=True).source(ReportSettings())
    stages.append(("build_report on the table", *_best(args.reps, lambda: build_report(source, ReportSettings()))))
    records, wanted, kept = (result if isinstance(result, int) else 0 for _, _, result in stages[:3])
    print(f"{args.folder}: {len(files)} files, {records:,} records, {wanted:,} decoded (wanted), {kept:,} rows kept\n")
    print(f"| stage | CPU s, best of {args.reps} | of which this stage | µs per record | µs per decoded record |")
    print("|---|---|---|---|---|")
    before = 0.0
    for index, (name, seconds, _) in enumerate(stages):
        own = seconds - before if index in (1, 2) else seconds
        print(f"| {name} | {seconds:.2f} | {own:.2f} | {own / records * 1e6:.1f} | {own / max(wanted, 1) * 1e6:.1f} |")
        before = seconds
    if args.decoders:
        print(f"\n| other way to decode, best of {args.reps} | CPU s | µs per record | result |")
        print("|---|---|---|---|")
        for name, run in _decoders(files):
            seconds, result = _best(args.reps, run)
            print(f"| {name} | {seconds:.2f} | {seconds / records * 1e6:.1f} | {result} |")


def _decoders(files: list[Path]) -> list[tuple[str, Callable[[], object]]]:
    """The other ways to decode the records of ``files`` (``--decoders``), by name."""
    import evtx
    import pyarrow as pa
    import pyarrow.json as pj

    system = re.compile(SYSTEM, re.DOTALL)
    joined_system = re.compile(SYSTEM.replace(".*?", "[^\x1e]*?"), re.DOTALL)

    def texts(path: Path) -> list[str]:
        return [record["data"] for record in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json()]

    def xml_only() -> int:
        return sum(1 for path in files for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records())

    def regex_per_record() -> int:
        found = 0
        for path in files:
            for record in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
                text = record["data"]
                match = system.search(text)
                if match is not None and PAYLOAD.search(text, match.end()) is not None:
                    found += 1
        return found

    def regex_per_block() -> int:
        found = 0
        for path in files:
            records = texts(path)
            for start in range(0, len(records), BLOCK):
                found += len(joined_system.findall("\x1e".join(records[start : start + BLOCK])))
        return found

    text = pa.string()

    def attributes(**fields: pa.DataType) -> pa.DataType:
        return pa.struct([("#attributes", pa.struct(list(fields.items())))])

    schema = pa.schema([("Event", pa.struct([
        ("System", pa.struct([("Provider", attributes(Name=text)), ("EventID", pa.int64()),
                              ("TimeCreated", attributes(SystemTime=text)), ("EventRecordID", pa.int64()),
                              ("Channel", text), ("Computer", text)])),
        ("UserData", pa.struct([("EventXML", pa.struct([("User", text), ("SessionID", pa.int64()),
                                                        ("Address", text), ("Param1", text), ("Param3", text)]))])),
        ("EventData", pa.struct([("TargetUserSid", text), ("TargetUserName", text), ("TargetDomainName", text),
                                 ("TargetLogonId", text), ("LogonType", pa.int64()), ("IpAddress", text)])),
    ]))])  # fmt: skip
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")

    def arrow_json() -> tuple[int, int]:
        rows, failed = 0, 0
        for path in files:
            records = texts(path)
            for start in range(0, len(records), BLOCK):
                block = "\n".join(records[start : start + BLOCK]).encode()
                try:
                    rows += pj.read_json(io.BytesIO(block), read_options=pj.ReadOptions(use_threads=False),
                                         parse_options=options).num_rows
                except pa.ArrowInvalid:
                    failed += 1
        return rows, failed

    ways: list[tuple[str, Callable[[], object]]] = [
        ("pyevtx-rs records (XML), 1 thread", xml_only),
        ("a regular expression per record", regex_per_record),
        (f"one expression over {BLOCK:,} joined records", regex_per_block),
        ("Arrow's JSON reader, explicit schema (rows, failed blocks)", arrow_json),
    ]
    try:
        import pyevtx  # libevtx-python: measured when installed, never required

        def libevtx() -> tuple[int, int]:
            read, refused = 0, 0
            for path in files:
                log = pyevtx.file()
                log.open(str(path))
                for index in range(log.number_of_records):
                    try:
                        record = log.get_record(index)
                        _ = (record.identifier, record.event_identifier, record.get_written_time_as_integer(),
                             record.computer_name, record.source_name, record.strings)
                        read += 1
                    except OSError:
                        refused += 1
                log.close()
            return read, refused

        ways.append(("libevtx-python (read, refused)", libevtx))
    except ImportError:
        print("(libevtx-python is not installed: `pip install libevtx-python` to time it too)")
    return ways


if __name__ == "__main__":
    main()
