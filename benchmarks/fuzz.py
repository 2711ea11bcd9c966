"""The long fuzz run: ``python benchmarks/fuzz.py --runs 100000`` (also ``make fuzz``).

Hypothesis draws recipes from the same strategies as ``tests/test_fuzz.py`` (mutated generated logs, mutated
logs from ``../shared/evtx`` when present, mutated XML exports); each input runs in a worker process under a
time limit and a memory limit, through every reader and ``read_file`` end to end. A worker that raises, overruns
its time, dies (a Rust abort, the memory limit) or breaks a reader's contract is a crash: its recipe (JSON) and
input bytes are saved to ``--out`` and the worker is replaced. Prints a summary; exits 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests import test_fuzz as fz  # noqa: E402

#: Crashes whose fix belongs elsewhere (reported to the lead), by the start of their message: counted, one kept.
KNOWN = {
    **fz.KNOWN_ELSEWHERE,
    "worker died": "pyevtx-rs: unbounded BinXML expansion aborts the process (see SECURITY.md)",
}


def signature(message: str) -> str:
    """A crash's kind: its first line without numbers, so one bug is saved once, not once per input."""
    return re.sub(r"\d+", "N", message.splitlines()[0] if message else "?")[:160]


def _worker(conn: Connection, memory_mb: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    folder = Path(tempfile.mkdtemp(prefix="evtrack-fuzz-worker-"))
    while True:
        recipe = conn.recv()
        if recipe is None:
            return
        try:
            conn.send(("ok", fz.run_recipe(recipe, folder)))
        except fz.Crash as exc:
            conn.send(("crash", f"{exc}\n{traceback.format_exc()}"))
        except BaseException as exc:  # anything else escaping the harness is a crash too
            conn.send(("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class Pool:
    """One worker process (the machine is shared), restarted after a crash or a hang."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.context = mp.get_context("fork")
        self._start()

    def _start(self) -> None:
        self.conn, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker, args=(child, self.memory_mb), daemon=True)
        self.process.start()

    def run(self, recipe: dict[str, Any], limit: float) -> tuple[str, Any]:
        self.conn.send(recipe)
        if self.conn.poll(limit):
            try:
                return self.conn.recv()  # type: ignore[no-any-return]
            except EOFError:
                pass
        else:
            self.process.kill()
            self.process.join()
            self._start()
            return "crash", f"no answer within {limit:.0f} s (hang)"
        self.process.join()
        code = self.process.exitcode
        self._start()
        return "crash", f"worker died (exit code {code}: abort, signal or memory limit)"

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per input (inputs are < 1 MB)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit of the worker")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "fuzz-crashes")
    parser.add_argument("--no-shared", action="store_true", help="do not use ../shared/evtx as bases")
    args = parser.parse_args()

    bases = fz.SYNTH_BASES + (() if args.no_shared else fz.SHARED_BASES)
    fz.synth_dir()  # generate the bases before forking
    pool = Pool(args.memory_mb)
    totals = {"inputs": 0, "records": 0, "issues": 0, "refused": 0, "crashes": 0, "known": 0}
    kinds: dict[str, int] = {}
    started = time.perf_counter()

    def record_crash(recipe: dict[str, Any], result: Any) -> None:
        kind = signature(str(result))
        kinds[kind] = kinds.get(kind, 0) + 1
        known = next((why for start, why in KNOWN.items() if kind.startswith(signature(start))), None)
        totals["known" if known else "crashes"] += 1
        if kinds[kind] == 1:  # keep the first input of each kind
            args.out.mkdir(parents=True, exist_ok=True)
            name = f"crash-{len(kinds):04d}"
            (args.out / f"{name}.json").write_text(json.dumps(recipe, indent=1) + "\n", encoding="utf-8")
            (args.out / f"{name}.bin").write_bytes(fz.build(recipe))
            (args.out / f"{name}.txt").write_text(str(result), encoding="utf-8")
            print(f"{'KNOWN' if known else 'CRASH'} {name}: {kind}", file=sys.stderr, flush=True)

    @seed(args.seed)
    @settings(max_examples=args.runs, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate])  # fmt: skip
    @given(recipe=fz.recipes(bases))
    def one(recipe: dict[str, Any]) -> None:
        status, result = pool.run(recipe, args.timeout)
        totals["inputs"] += 1
        if status == "ok":
            for key in ("records", "issues", "refused"):
                totals[key] += result[key]
        else:
            record_crash(recipe, result)
        if totals["inputs"] % 1000 == 0:
            print(f"{totals['inputs']} inputs, {time.perf_counter() - started:.0f} s, {totals}", file=sys.stderr,
                  flush=True)  # fmt: skip

    try:
        one()
    finally:
        pool.close()
    elapsed = time.perf_counter() - started
    print(f"inputs={totals['inputs']} records={totals['records']} issues={totals['issues']} "
          f"refused={totals['refused']} crashes={totals['crashes']} known={totals['known']} seconds={elapsed:.0f} "
          f"({totals['inputs'] / max(elapsed, 1e-9):.1f} inputs/s)")  # fmt: skip
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"  {count:6d}  {kind}")
    if kinds:
        print(f"first input of each kind saved to {args.out}")
    return 1 if totals["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
