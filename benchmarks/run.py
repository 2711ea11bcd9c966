"""evtrack's benchmark: throughput and peak memory of the parsers and of evtrack, measured side by side.

    python benchmarks/run.py --quick        # ~100 MB generated + ../shared/evtx, one repetition: under two minutes
    python benchmarks/run.py                # 200 MB and 1 GB generated, three repetitions (medians)

Logs are generated with `evtrack sample` into benchmarks/data/ (kept between runs, not committed). Every candidate
runs in a fresh child process (so peak RSS is its own), candidates are interleaved within each repetition, and
the table shows medians. Ratios are against bare pyevtx-rs iteration over the same files in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
SHARED = ROOT.parent / "shared" / "evtx"
NAIVE_SAMPLE = 300  # python-evtx rendering is ~100 records/s: measured on the first records of each file only


def _rss_mb() -> float | None:
    try:
        import resource  # POSIX only: the benchmark reports "n/a" elsewhere
    except ImportError:
        return None
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / scale


def child(candidate: str, files: list[str], jobs: int) -> dict[str, object]:
    """Run one candidate in this (fresh) process and return its numbers."""
    start = time.perf_counter()
    records = 0
    if candidate == "start-up":  # what every evtrack candidate pays before its first record
        import evtx
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute

        import evtrack.reading
        import evtrack.sources.pyevtx_rs
        import evtrack.usage  # noqa: F401

        pa.array(np.zeros(1))  # pyarrow imports pandas on its first array: every evtrack run pays it
    elif candidate == "bare":
        import evtx

        for name in files:
            iterator = evtx.PyEvtxParser(name).records()
            while True:
                try:
                    next(iterator)
                except StopIteration:
                    break
                except Exception:  # count and go on, as evtrack does
                    continue
                records += 1
    elif candidate == "naive-python-evtx":
        from Evtx.Evtx import Evtx

        from evtrack.sources.xmlfile import event_from_xml

        for name in files:
            with Evtx(name) as log:
                done = 0
                for chunk in log.chunks():
                    for record in chunk.records():
                        with contextlib.suppress(Exception):
                            event_from_xml(record.xml())
                        records += 1
                        done += 1
                        if done >= NAIVE_SAMPLE:
                            break
                    if done >= NAIVE_SAMPLE:
                        break
    else:
        from evtrack.reading import read_inputs

        engine = "python-evtx" if candidate.endswith("python-evtx") else "evtx"
        result = read_inputs(files, engine=engine, jobs=jobs, slim=candidate.startswith("report"))  # as the CLI does
        records = result.records
        if candidate.startswith("report"):
            from evtrack.pipeline import source_from_read
            from evtrack.render.json import report_json
            from evtrack.usage import ReportSettings, build_report

            report_json(build_report(source_from_read(result), ReportSettings()))
        else:
            from evtrack.render.events import render_events

            render_events(result.table, "jsonl")
    seconds = time.perf_counter() - start
    return {"records": records, "seconds": seconds, "rss_mb": _rss_mb()}


def run_child(candidate: str, files: list[Path], jobs: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", candidate, "--jobs", str(jobs), *map(str, files)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


#: Users per generated set: few enough that, as on a real session host, most Security records are noise
#: (about 17 noise records per RDP record at 100 MB; the real logs in ../shared/evtx have ~170).
USERS, HOSTS = 40, 4


def generate(size_mb: int) -> list[Path]:
    folder = DATA / f"sample-{size_mb}mb-u{USERS}"
    if not (folder / "ground_truth.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "evtrack", "sample", "-o", str(folder), "--users", str(USERS), "--hosts",
             str(HOSTS), "--from", "2024-01-01", "--to", "2024-01-31", "--size-mb", str(size_mb), "--seed", "1",
             "-q"],
            check=True,
        )
    return sorted(folder.glob("*.evtx"))


def startup(args: list[str], reps: int = 11) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evtrack", *args], check=False, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~100 MB and one repetition (under two minutes)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.files, args.jobs)))
        return
    cores = os.cpu_count() or 1
    reps = args.reps or (1 if args.quick else 3)
    sets: dict[str, list[Path]] = {}
    for size in ([100] if args.quick else [200, 1000]):
        sets[f"generated {size} MB"] = generate(size)
    if SHARED.is_dir():
        sets["../shared/evtx (real)"] = sorted(SHARED.glob("*.evtx"))
    candidates = [
        ("start-up", 1), ("bare", 1), ("naive-python-evtx", 1), ("events", 1), ("report", 1), ("report", cores),
        ("events-python-evtx", 1), ("report-python-evtx", 1), ("report-python-evtx", cores),
    ]
    print(f"machine: {cores} cores, Python {sys.version.split()[0]}, {reps} repetition(s), medians")
    for label, files in sets.items():
        size = sum(f.stat().st_size for f in files) / 1e6
        results: dict[tuple[str, int], list[dict[str, object]]] = {c: [] for c in candidates}
        for path in files:  # page cache warm for every candidate, the first one included
            path.read_bytes()
        for _ in range(reps):
            for candidate, jobs in candidates:  # interleaved
                results[(candidate, jobs)].append(run_child(candidate, files, jobs))
        print(f"\n## {label}: {len(files)} files, {size:.1f} MB\n")
        print("| candidate | jobs | records | seconds | records/s | MB/s | peak RSS MB | vs bare | vs naive "
              "| records/s net of start-up | net vs bare |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        rates: dict[tuple[str, int], float] = {}
        for key, runs in results.items():
            seconds = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
            records = int(runs[0]["records"])  # type: ignore[call-overload]
            rates[key] = records / seconds if seconds else 0.0
        bare = rates[("bare", 1)]
        naive = rates[("naive-python-evtx", 1)]
        startup_s = statistics.median(float(r["seconds"]) for r in results[("start-up", 1)])  # type: ignore[arg-type]
        for key, runs in results.items():
            candidate, jobs = key
            if candidate == "start-up":
                print(f"| start-up (imports only) | 1 | 0 | {startup_s:.2f} | | | | | | | |")
                continue
            seconds = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
            records = int(runs[0]["records"])  # type: ignore[call-overload]
            rss = max((float(r["rss_mb"]) for r in runs if r["rss_mb"] is not None), default=None)  # type: ignore[arg-type]
            mb_s = "" if candidate == "naive-python-evtx" else f"{size / seconds:.1f}"
            name = f"{candidate} (first {NAIVE_SAMPLE} records/file)" if candidate == "naive-python-evtx" else candidate
            evtrack_candidate = candidate not in ("bare", "naive-python-evtx")
            net = records / max(seconds - startup_s, 1e-6) if evtrack_candidate else rates[key]
            print(f"| {name} | {jobs} | {records:,} | {seconds:.2f} | {rates[key]:,.0f} | {mb_s} | "
                  f"{'n/a' if rss is None else f'{rss:.0f}'} | {rates[key] / bare:.2f}x | {rates[key] / naive:,.0f}x "
                  f"| {net:,.0f} | {net / bare:.2f}x |")
    print("\n## start-up (median of 11)\n")
    print(f"- `evtrack --help`: {startup(['--help']):.3f} s")
    store = DATA / "bench-store.sqlite3"
    if not store.exists():  # a store with the sample logs and one saved report, so the listing has work to do
        sample = ROOT / "sample_logs"
        subprocess.run([sys.executable, "-m", "evtrack", "ingest", str(sample), "--store", str(store), "-q"],
                       check=True)
        subprocess.run([sys.executable, "-m", "evtrack", "report", "--store", str(store), "--save", "-q", "-f", "json",
                        "-o", str(DATA / "bench-report.json"), "--config", str(sample / "evtrack.toml")], check=True)
    print(f"- `evtrack reports list` (one saved report): {startup(['reports', 'list', '--store', str(store)]):.3f} s")


if __name__ == "__main__":
    main()
