"""evtrack's benchmark: throughput and peak memory of the parsers and of evtrack, measured side by side.

    python benchmarks/run.py --quick        # ~100 MB generated + ../shared/evtx, one repetition: under two minutes
    python benchmarks/run.py                # 200 MB and 1 GB generated, three repetitions (medians)
    python benchmarks/run.py --dense        # dense 150 MB and 300 MB sets: `evtrack report` as a user runs it,
                                            # memory per evidence event, projected peak for a large farm

Logs are generated with `evtrack sample` into benchmarks/data/ (kept between runs, not committed). Every candidate
runs in a fresh child process (so peak RSS is its own), candidates are interleaved within each repetition, and
the table shows medians. Ratios are against bare pyevtx-rs iteration over the same files in the same run.

Dense sets (issue 15) are logs where most records are RDP evidence (busy farms, LocalSessionManager logs): there the
report's cost per evidence event shows. They are generated like the issue's measurements
(`evtrack sample --seed 5 --hosts 4 --users 400 --size-mb 150`, and 8 hosts, 800 users, 300 MB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's evtrack, wherever the benchmark is started from
from evtrack.cli import ARROW_MEMORY_POOL  # noqa: E402  (light: the command line imports nothing heavy)


def _env(**extra: str) -> dict[str, str]:
    """The environment of every child: this checkout's evtrack first on the path."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}

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
    elif candidate == "cli-report":
        return cli_report(files[0])
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


def cli_report(folder: str) -> dict[str, object]:
    """``evtrack report FOLDER`` exactly as a user runs it (default jobs), in a child process: its wall time, the
    largest resident set of it and its workers, and what the report counted."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "report.json"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evtrack", "report", folder, "-f", "json", "-q", "-o", str(out),
                        "--created-at", "2024-06-01T00:00:00Z"], check=True, cwd=scratch, env=_env())
        seconds = time.perf_counter() - start
        report = json.loads(out.read_text(encoding="utf-8"))
    days = (datetime.fromisoformat(report["period_end"]) - datetime.fromisoformat(report["period_start"])).days
    return {"records": report["records_read"], "seconds": seconds, "rss_mb": _rss_mb(),
            "evidence": sum(u["events"] for u in report["users"]) + sum(u["events"] for u in report["excluded"]),
            "users": len(report["users"]), "days": days}


def run_child(candidate: str, files: list[Path], jobs: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", candidate, "--jobs", str(jobs), *map(str, files)]
    # the allocator evtrack's command line picks (evtrack.cli.ARROW_MEMORY_POOL), so in-process candidates
    # measure what a user gets
    pool = os.environ.get("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=_env(ARROW_DEFAULT_MEMORY_POOL=pool)).stdout
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
            check=True, env=_env(),
        )
    return sorted(folder.glob("*.evtx"))


#: The dense sets: (MB, users, hosts), seed 5, the default four months.
DENSE = ((150, 400, 4), (300, 800, 8))


def generate_dense(size_mb: int, users: int, hosts: int) -> Path:
    folder = DATA / f"dense-{size_mb}mb-u{users}"
    if not (folder / "ground_truth.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "evtrack", "sample", "-o", str(folder), "--seed", "5", "--hosts",
                        str(hosts), "--users", str(users), "--size-mb", str(size_mb), "-q"], check=True, env=_env())
    return folder


def dense(reps: int, quick: bool) -> None:
    """Bare pyevtx-rs iteration and ``evtrack report`` (the command, default jobs) on the dense sets; then the
    memory per evidence event (the slope between the two sets) and the peak it projects for a large farm."""
    measured: list[tuple[int, float, int, int, int]] = []  # evidence, peak MB, users, days, records
    for size, users, hosts in DENSE[:1] if quick else DENSE:
        folder = generate_dense(size, users, hosts)
        files = sorted(folder.glob("*.evtx"))
        for path in files:  # page cache warm
            path.read_bytes()
        bare: list[dict[str, object]] = []
        report: list[dict[str, object]] = []
        for _ in range(reps):
            bare.append(run_child("bare", files, 1))
            report.append(run_child("cli-report", [folder], 1))
        bare_s = statistics.median(float(r["seconds"]) for r in bare)  # type: ignore[arg-type]
        report_s = statistics.median(float(r["seconds"]) for r in report)  # type: ignore[arg-type]
        records, evidence = int(report[0]["records"]), int(report[0]["evidence"])  # type: ignore[call-overload]
        peak = max(float(r["rss_mb"]) for r in report if r["rss_mb"] is not None)  # type: ignore[arg-type]
        measured.append((evidence, peak, int(report[0]["users"]), int(report[0]["days"]), records))  # type: ignore[call-overload]
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"\n## dense {size} MB: {len(files)} files, {mb:.1f} MB, {records:,} records, {evidence:,} evidence "
              f"events counted, {report[0]['users']} users\n")
        print("| candidate | seconds | records/s | vs bare | peak RSS MB (largest process) |")
        print("|---|---|---|---|---|")
        bare_rss = max(float(r["rss_mb"]) for r in bare if r["rss_mb"] is not None)  # type: ignore[arg-type]
        print(f"| bare pyevtx-rs iteration, 1 job | {bare_s:.2f} | {records / bare_s:,.0f} | 1.00x | {bare_rss:.0f} |")
        print(f"| `evtrack report` (default jobs) | {report_s:.2f} | {records / report_s:,.0f} | "
              f"{bare_s / report_s:.2f}x | {peak:.0f} |")
    if len(measured) < 2:
        return
    (ev_a, mb_a, users, days, _), (ev_b, mb_b, _, _, _) = measured[0], measured[-1]
    slope = (mb_b - mb_a) * 2**20 / (ev_b - ev_a)
    fixed = mb_a - slope * ev_a / 2**20
    rate = ev_a / (users * days)
    farm = round(rate * 1000 * 365)
    print(f"\nMemory per evidence event (peak RSS, between the two sets, reading included): {slope:,.0f} bytes; "
          f"fixed part {fixed:.0f} MB.")
    print(f"One year of a 1,000-user farm at this set's {rate:.2f} evidence events per user and day: {farm:,} events,"
          f" projected peak {fixed + slope * farm / 2**20:,.0f} MB; at 3,000,000 events "
          f"{fixed + slope * 3_000_000 / 2**20:,.0f} MB.")


def startup(args: list[str], reps: int = 11) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evtrack", *args], check=False, capture_output=True, env=_env())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~100 MB and one repetition (under two minutes)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--dense", action="store_true", help="the dense sets only (with --quick: the 150 MB one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.files, args.jobs)))
        return
    cores = os.cpu_count() or 1
    reps = args.reps or (1 if args.quick else 3)
    if args.dense:
        print(f"machine: {cores} cores, Python {sys.version.split()[0]}, {reps} repetition(s), medians")
        dense(reps, args.quick)
        return
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
                       check=True, env=_env())
        subprocess.run([sys.executable, "-m", "evtrack", "report", "--store", str(store), "--save", "-q", "-f", "json",
                        "-o", str(DATA / "bench-report.json"), "--config", str(sample / "evtrack.toml")], check=True,
                       env=_env())
    print(f"- `evtrack reports list` (one saved report): {startup(['reports', 'list', '--store', str(store)]):.3f} s")


if __name__ == "__main__":
    main()
