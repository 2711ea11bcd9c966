"""``write_sample``: write a synthetic fleet's .evtx files (and, with ``sources``, its other evidence sources: see
:mod:`evtrack.synth.sources`) plus ``ground_truth.json`` computed from the model."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from evtrack.synth.evtx_writer import EventSpec, EventType, EvtxWriter, WriteStats
from evtrack.synth.sources import DEFAULT_POLL_MINUTES, LOGS, SourceOutput, parse_sources, write_sources
from evtrack.synth.truth import source_truth
from evtrack.synth.workload import (
    CHANNELS,
    LSM,
    RCM,
    SEC,
    HostPlan,
    ModelEvent,
    Workload,
    build_workload,
    clear_event,
    ft_from_datetime,
    ft_to_datetime,
    host_streams,
    month_key,
)

SCHEMA_VERSION = 1
#: Rough bytes one record takes in a file (measured), used only to size ``size_mb`` samples.
_BYTES_PER_RDP_RECORD = 560
_BYTES_PER_NOISE_RECORD = 640
_MAX_NOISE_RATIO = 40.0
_MAX_USERS = 5000


@dataclass(frozen=True)
class SampleResult:
    """What :func:`write_sample` wrote: every file (evtx, other sources, ground truth), records per evtx file,
    bytes of the evtx, time; ``source_files``: how many files each source wrote."""

    out_dir: Path
    files: tuple[Path, ...]
    records: dict[str, int]
    bytes: int
    seconds: float
    ground_truth: Path
    source_files: dict[str, int] = field(default_factory=dict)

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _iso(ft: int | None) -> str | None:
    if ft is None:
        return None
    return ft_to_datetime(ft).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _months(wl: Workload) -> list[str]:
    out = []
    y, m = wl.start.year, wl.start.month
    while (y, m) <= (wl.end.year, wl.end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


#: Payload fields that carry the RDP client's address / name (4624 IpAddress, LSM Address, 4778/4779).
_ADDRESS_FIELDS = ("IpAddress", "Address", "ClientAddress")
_field_index_cache: dict[tuple[int, str], int | None] = {}


def _field_value(etype: EventType, values: tuple[object, ...], names: tuple[str, ...]) -> object:
    key = (id(etype), names[0])
    if key not in _field_index_cache:
        _field_index_cache[key] = next((i for i, (n, _) in enumerate(etype.fields) if n in names), None)
    idx = _field_index_cache[key]
    return values[idx] if idx is not None and idx < len(values) else None


def _note_device(ev: ModelEvent, month: str, devices: dict[str, dict[str, set[str]]]) -> None:
    """Record the client address (and 4778/4779 ClientName) an RDP evidence event carries, if any."""
    address = _field_value(ev.etype, ev.values, _ADDRESS_FIELDS)
    if not isinstance(address, str):
        return  # 4634 type 10: evidence, but no address
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return
    names = devices.setdefault(month, {}).setdefault(address, set())
    name = _field_value(ev.etype, ev.values, ("ClientName",))
    if isinstance(name, str) and name:
        names.add(name)


def _spec(ev: ModelEvent, rid: int, computer: str) -> EventSpec:
    return EventSpec(ev.etype, ev.ft, rid, computer, ev.values, ev.pid, ev.tid, ev.activity, ev.user_sid)


def _plan_noise(wl: Workload, noise_ratio: float) -> None:
    total = round(noise_ratio * wl.rdp_event_count())
    n = len(wl.plans)
    for i, plan in enumerate(wl.plans):
        plan.noise_count = total // n + (1 if i < total % n else 0)


def _write_host(
    wl: Workload,
    plan: HostPlan,
    out_dir: Path,
    evidence: dict[str, set[int]],
    tzinfo: ZoneInfo,
    devices: dict[str, dict[str, set[str]]] | None = None,
) -> list[WriteStats]:
    host = plan.host
    rng = random.Random(f"evtrack-synth/{wl.seed}/ids/{host.index}")
    first_ids = {SEC: rng.randrange(10_000, 900_000), LSM: rng.randrange(100, 5000), RCM: rng.randrange(10, 2000)}
    stats: list[WriteStats] = []
    streams = host_streams(wl, plan)
    older = host.index % 2 == 1  # every second host lays records out as older Windows does (EvtxWriter)
    for channel in CHANNELS:
        path = out_dir / f"{host.name}-{channel}.evtx"
        writer = EvtxWriter(path, fragment_payload=older)
        re_writer = None
        if channel == SEC and plan.reexport is not None:
            re_writer = EvtxWriter(out_dir / f"{host.name}-{channel}-reexport.evtx", fragment_payload=older)
        rid = first_ids[channel]
        start = plan.security_start if channel == SEC else None
        pending_clear = plan.clear_ft if channel == SEC else None
        events: Iterator[ModelEvent] = streams[channel]
        for ev in events:
            if pending_clear is not None and ev.ft >= pending_clear:
                clear = clear_event(wl, plan, pending_clear)
                spec = _spec(clear, rid, host.fqdn)
                writer.add(spec)
                if re_writer is not None and plan.reexport and plan.reexport[0] <= clear.ft <= plan.reexport[1]:
                    re_writer.add(spec)
                rid += 1
                pending_clear = None
            if start is None or ev.ft >= start:
                spec = _spec(ev, rid, host.fqdn)
                writer.add(spec)
                if ev.evidence >= 0:
                    month = month_key(ev.ft, tzinfo)
                    evidence.setdefault(month, set()).add(ev.evidence)
                    if devices is not None:
                        _note_device(ev, month, devices)
                if re_writer is not None and plan.reexport and plan.reexport[0] <= ev.ft <= plan.reexport[1]:
                    re_writer.add(spec)
            rid += 1
        stats.append(writer.close())
        if re_writer is not None:
            stats.append(re_writer.close())
    return stats


def write_sample(
    out_dir: Path,
    *,
    users: int = 12,
    hosts: int = 2,
    start: date,
    end: date,
    tz: str = "UTC",
    seed: int = 1,
    noise_ratio: float = 3.0,
    size_mb: float | None = None,
    rollover: bool = True,
    clear_log: bool = True,
    reexport: bool = True,
    sources: str | Sequence[str] = (LOGS,),
    poll_minutes: int = DEFAULT_POLL_MINUTES,
) -> SampleResult:
    """Write one Security, LocalSessionManager and RemoteConnectionManager .evtx per host (plus a Security
    re-export when ``reexport``) and ``ground_truth.json`` into ``out_dir``. Same arguments, same bytes.

    ``sources`` (see :mod:`evtrack.synth.sources`): ``logs`` (the .evtx, in ``out_dir`` itself), ``broker``,
    ``quser``, ``azure``, ``wvd`` (each in ``out_dir/<source>/``) or ``all``; any choice but ``logs`` alone adds
    a ``sources`` key (ground truth per source) to ``ground_truth.json``. A ``<source>`` folder left by an earlier
    sample (``out_dir`` holds a ground_truth.json) is replaced; any other existing one is refused."""
    began = time.perf_counter()
    chosen = parse_sources(sources)
    others = [s for s in chosen if s != LOGS]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in others:
        if (out_dir / source).exists() and not (out_dir / "ground_truth.json").is_file():
            raise FileExistsError(f"{out_dir / source} exists and {out_dir} holds no earlier sample: choose an "
                                  "empty output folder")
    tzinfo = ZoneInfo(tz)
    params = {
        "users": users,
        "hosts": hosts,
        "start": start,
        "end": end,
        "tz": tz,
        "seed": seed,
        "noise_ratio": noise_ratio,
        "rollover": rollover,
        "clear_log": clear_log,
        "reexport": reexport,
    }
    wl = build_workload(**params)  # type: ignore[arg-type]
    if size_mb is not None:
        target = size_mb * 1e6
        rdp = max(wl.rdp_event_count(), 1)
        needed = (target - rdp * _BYTES_PER_RDP_RECORD) / (rdp * _BYTES_PER_NOISE_RECORD)
        if needed > _MAX_NOISE_RATIO and users < _MAX_USERS:
            factor = needed / _MAX_NOISE_RATIO
            params["users"] = min(_MAX_USERS, max(users, math.ceil(users * factor)))
            wl = build_workload(**params)  # type: ignore[arg-type]
            rdp = max(wl.rdp_event_count(), 1)
            needed = (target - rdp * _BYTES_PER_RDP_RECORD) / (rdp * _BYTES_PER_NOISE_RECORD)
        noise_ratio = max(0.0, needed)
    _plan_noise(wl, noise_ratio)

    evidence: dict[str, set[int]] = {}
    devices: dict[str, dict[str, set[str]]] = {}
    stats: list[WriteStats] = []
    # Written into a staging folder first and moved into place only once complete: a run that is interrupted or
    # fails leaves no partial file behind (and no half-written fleet under the final names).
    # The .evtx are always made: the ``months`` key is what they show, whether or not ``logs`` keeps them.
    staging = Path(tempfile.mkdtemp(prefix=".evtrack-sample-", dir=out_dir))
    extra = SourceOutput()
    try:
        for plan in wl.plans:
            stats.extend(_write_host(wl, plan, staging, evidence, tzinfo, devices))
        if others:
            extra = write_sources(wl, staging, others, poll_minutes=poll_minutes)
        gt = _ground_truth(wl, stats, evidence, tzinfo, noise_ratio, size_mb, devices)
        if chosen != (LOGS,):
            if LOGS not in chosen:
                gt["files"] = {}
            gt["sources"], gt["source_settings"] = source_truth(wl, chosen, evidence, extra, poll_minutes,
                                                                _months(wl))
        (staging / "ground_truth.json").write_text(json.dumps(gt, indent=2, sort_keys=False) + "\n",
                                                   encoding="utf-8")
        for source in others:
            if (out_dir / source).exists():
                shutil.rmtree(out_dir / source)  # an earlier sample's (checked above)
            os.replace(staging / source, out_dir / source)
        names = ([s.path.name for s in stats] if LOGS in chosen else []) + ["ground_truth.json"]
        for name in names:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stats = [dataclasses.replace(s, path=out_dir / s.path.name) for s in stats] if LOGS in chosen else []
    gt_path = out_dir / "ground_truth.json"
    written = [out_dir / path for source in others for path in extra.files.get(source, [])]
    files = (*(s.path for s in stats), *written, gt_path)
    return SampleResult(
        out_dir=out_dir,
        files=files,
        records={s.path.name: s.records for s in stats},
        bytes=sum(s.bytes for s in stats),
        seconds=time.perf_counter() - began,
        ground_truth=gt_path,
        source_files=({LOGS: len(stats)} if LOGS in chosen else {})
        | {source: len(extra.files.get(source, [])) for source in others},
    )


def _ground_truth(
    wl: Workload,
    stats: list[WriteStats],
    evidence: dict[str, set[int]],
    tzinfo: ZoneInfo,
    noise_ratio: float,
    size_mb: float | None,
    devices: dict[str, dict[str, set[str]]] | None = None,
) -> dict[str, object]:
    dom = wl.domain
    devices = devices or {}
    intervals = _connected_intervals(wl, stats)
    sessions_per_month: dict[str, int] = {}
    for s in wl.sessions:
        key = month_key(s.start_ft, tzinfo)
        sessions_per_month[key] = sessions_per_month.get(key, 0) + 1
    months: dict[str, object] = {}
    for key in _months(wl):
        members = sorted((wl.users[i] for i in evidence.get(key, set())), key=lambda u: u.account(dom))
        month_devices = [
            {"address": addr, "name": min(names) if names else None}
            for addr, names in sorted(devices.get(key, {}).items(), key=lambda kv: ipaddress.ip_address(kv[0]))
        ]
        lo, hi = _month_bounds(key, tzinfo)
        by_host = {h.name: _peak(ivs, lo, hi) for h, ivs in zip(wl.hosts, intervals, strict=True)}
        months[key] = {
            "users": [{"sid": u.sid, "account": u.account(dom)} for u in members],
            "user_count": len(members),
            "sessions": sessions_per_month.get(key, 0),
            "devices": month_devices,
            "device_count": len(month_devices),
            "peak_sessions": _peak([iv for ivs in intervals for iv in ivs], lo, hi),
            "peak_sessions_by_host": by_host,
        }
    files: dict[str, object] = {}
    for st in stats:
        host_name, _, rest = st.path.stem.partition("-")
        channel = rest.removesuffix("-reexport")
        files[st.path.name] = {
            "host": next(h.fqdn for h in wl.hosts if h.name == host_name),
            "channel": {"Security": "Security", LSM: _LSM_CH, RCM: _RCM_CH}[channel],
            "reexport": rest.endswith("-reexport"),
            "records": st.records,
            "chunks": st.chunks,
            "bytes": st.bytes,
            "first_record_id": st.first_record_id,
            "last_record_id": st.last_record_id,
            "first_time": _iso(st.first_time),
            "last_time": _iso(st.last_time),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "evtrack.synth",
        "parameters": {
            "seed": wl.seed,
            "users": len(wl.users),
            "hosts": len(wl.hosts),
            "from": wl.start.isoformat(),
            "to": wl.end.isoformat(),
            "tz": wl.tz,
            "noise_ratio": round(noise_ratio, 4),
            "size_mb": size_mb,
        },
        "domain": {"netbios": dom.netbios, "fqdn": dom.fqdn, "sid": dom.sid},
        "evidence_rule": (
            "4624 LogonType 10/12; 4624 type 7 with a non-loopback IP; LSM 21/24/25 with an IP Address; "
            "4778/4779 with SessionName RDP-Tcp#* or an IP ClientAddress; 4634 LogonType 10"
        ),
        "device_rule": DEVICE_RULE,
        "concurrency_rule": CONCURRENCY_RULE,
        "months": months,
        "users": [
            {"sid": u.sid, "account": u.account(dom), "sam": u.sam, "upn": u.upn, "admin": u.admin} for u in wl.users
        ],
        "hosts": [
            {
                "name": p.host.name,
                "fqdn": p.host.fqdn,
                "console_address": p.host.console_word,
                "security_starts_at": _iso(p.security_start),
                "security_cleared_at": _iso(p.clear_ft),
                "reexport_window": [_iso(p.reexport[0]), _iso(p.reexport[1])] if p.reexport else None,
            }
            for p in wl.plans
        ],
        "files": files,
    }


DEVICE_RULE = (
    "a client device (its IP address) is in a month when an RDP evidence event written to a file in that month "
    "carries it: 4624 type 10/7 IpAddress, LSM 21/24/25 Address, 4778/4779 ClientAddress; name = the ClientName "
    "of that address's 4778/4779 events written in that month (the smallest if several), else null; "
    "sorted by address (numerically)"
)
CONCURRENCY_RULE = (
    "RDP sessions of the model only (no console logons), written to a file or not; a session is connected from "
    "its logon (4624 type 10, then LSM 21) or reconnect (4624 type 7, then LSM 25 / 4778) until its next "
    "disconnect (4779, then LSM 24) or logoff (4647 / LSM 23, then 4634), at the time of the first event of "
    "each step; intervals are half-open [connect, end) in event time, so an end and a connect at the same "
    "instant do not overlap; a session still connected at the end of the period is closed at the time of its "
    "host's last logged event; peaks are taken inside each calendar month (in the tz) over intervals clipped "
    "to the month, per host and over all hosts"
)


def _connected_intervals(wl: Workload, stats: list[WriteStats]) -> list[list[tuple[int, int]]]:
    """Per host, the half-open connected intervals ``[from, until)`` of every RDP session (FILETIME ticks)."""
    last_logged: dict[str, int] = {}
    for st in stats:
        host_name = st.path.stem.partition("-")[0]
        if st.last_time is not None:
            last_logged[host_name] = max(last_logged.get(host_name, st.last_time), st.last_time)
    out: list[list[tuple[int, int]]] = [[] for _ in wl.hosts]
    for s in wl.sessions:
        host = wl.hosts[s.host]
        for since, until in s.connected:
            if until is None:
                until = max(last_logged.get(host.name, wl.end_ft), since)
            if until > since:
                out[s.host].append((since, until))
    return out


def _month_bounds(key: str, tzinfo: ZoneInfo) -> tuple[int, int]:
    y, m = map(int, key.split("-"))
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return ft_from_datetime(datetime(y, m, 1, tzinfo=tzinfo)), ft_from_datetime(datetime(ny, nm, 1, tzinfo=tzinfo))


def _peak(intervals: list[tuple[int, int]], lo: int, hi: int) -> int:
    """Most half-open intervals alive at once inside ``[lo, hi)`` (an end sorts before a start at one instant).

    Written apart from :func:`evtrack.concurrency.peak` on purpose: the ground truth checks that code."""
    edges: list[tuple[int, int]] = []
    for a, b in intervals:
        a, b = max(a, lo), min(b, hi)
        if a < b:
            edges.append((a, 1))
            edges.append((b, -1))
    edges.sort()
    peak = live = 0
    for _, delta in edges:
        live += delta
        peak = max(peak, live)
    return peak


_LSM_CH = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
_RCM_CH = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"
