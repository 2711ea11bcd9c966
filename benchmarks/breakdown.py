"""Where a dense report's CPU time goes, per record, in one process (issue 15).

    python benchmarks/breakdown.py FOLDER [--reps N]

Each stage is measured as CPU time of this process (``time.process_time``, best of ``--reps``), so that other
work on the machine disturbs it less than wall time; every stage includes the ones before it:

1. pyevtx-rs alone: ``records_json()`` with one thread, every record's JSON text made and dropped;
2. the reader: :func:`evtrack.sources.pyevtx_rs.read_pyevtx_rs` as a report runs it (coverage filled, slim),
   every wanted record decoded into a :class:`~evtrack.sources.base.RawEvent`;
3. :func:`evtrack.reading.read_file`: the rows normalised and built into Arrow batches;
4. :func:`evtrack.usage.build_report` on the table read once (``--jobs 1``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _best(reps: int, run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reps):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import evtx
    import numpy as np
    import pyarrow as pa

    from evtrack import catalogue
    from evtrack.coverage import CoverageBuilder
    from evtrack.pipeline import FilesInput
    from evtrack.reading import read_file
    from evtrack.sources.base import FileStats
    from evtrack.sources.pyevtx_rs import read_pyevtx_rs
    from evtrack.usage import ReportSettings, build_report

    pa.array(np.zeros(1))  # pyarrow's first array imports pandas: not a stage's cost
    files = sorted(args.folder.glob("*.evtx"))
    plan = catalogue.read_plan()
    counts = {"records": 0, "wanted": 0, "rows": 0}

    def bare() -> None:
        counts["records"] = sum(1 for path in files for _ in
                                evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())

    def reader() -> None:
        counts["wanted"] = sum(1 for path in files for _ in
                               read_pyevtx_rs(path, FileStats(path), plan=plan, coverage=CoverageBuilder(), slim=True))

    def rows() -> None:
        counts["rows"] = sum(b.num_rows for path in files for b in read_file(path, slim=True, plan=plan).batches)

    stages = [("pyevtx-rs records_json, 1 thread", _best(args.reps, bare)),
              ("+ the reader (RawEvents of wanted records)", _best(args.reps, reader)),
              ("+ normalised rows in Arrow batches (read_file)", _best(args.reps, rows))]
    source = FilesInput([args.folder], jobs=1, slim=True).source(ReportSettings())
    stages.append(("build_report on the table", _best(args.reps, lambda: build_report(source, ReportSettings()))))
    records, wanted = counts["records"], counts["wanted"]
    print(f"{args.folder}: {len(files)} files, {records:,} records, {wanted:,} decoded (wanted), "
          f"{counts['rows']:,} rows kept\n")
    print(f"| stage | CPU s, best of {args.reps} | of which this stage | µs per record | µs per decoded record |")
    print("|---|---|---|---|---|")
    before = 0.0
    for index, (name, seconds) in enumerate(stages):
        own = seconds - before if index in (1, 2) else seconds
        print(f"| {name} | {seconds:.2f} | {own:.2f} | {own / records * 1e6:.1f} | {own / max(wanted, 1) * 1e6:.1f} |")
        before = seconds

if __name__ == "__main__":
    main()
