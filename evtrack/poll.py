"""``evtrack poll``: take snapshots of the sessions alive right now, from a Connection Broker or from session hosts.

A poll runs one command per target and keeps what the command produced, unchanged, as one file per target and poll:

* a Connection Broker: ``Get-RDUserSession -ConnectionBroker BROKER`` piped to ``Export-Csv`` by Windows PowerShell
  5.1 (:func:`broker_command`), with two columns added: ``PolledAt`` (the poll time, ISO 8601 UTC) and
  ``ConnectionBroker``; no session gives a header-only file. Kept as ``rdusersession_<broker>_<stamp>.csv``.
* a session host: ``query user /server:HOST`` (:func:`query_user_command`), its text as printed (decoded from the
  console code page, kept as UTF-8); exit code 1 with ``No User exists for *`` is a poll that saw no session. Kept
  as ``quser_<HOST>_<stamp>.txt``.

``<stamp>`` is the poll time in UTC, ``yyyyMMddTHHmmssZ``. The readers take the polled server and the poll time
from these names (and from ``PolledAt``), so the names are a contract (``/work/notes/contract14.md``).

Snapshots go to a folder and/or into the store (:meth:`evtrack.store.Store.ingest`, exactly what ``evtrack ingest``
does with the same files). Every file is written atomically (:func:`evtrack.output.write_atomic`): a reader never
sees half a poll. A target that fails is reported in its :class:`SnapshotResult` and does not stop the others.

The commands exist only on Windows. Elsewhere (and in tests) a stand-in command (:class:`CommandTemplate`) replaces
them; it must behave as the real one does: print the ``query user`` text on stdout, or write the CSV to the file
named by ``{output}``.

Nothing here prints: :mod:`evtrack.cli.poll` does.
"""

from __future__ import annotations

import codecs
import contextlib
import locale
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Protocol

from evtrack.errors import ConfigError, EvtrackError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
"""The poll time in a snapshot's file name: ``yyyyMMddTHHmmssZ``, UTC."""
POLLED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""The ``PolledAt`` column: ISO 8601, UTC, whole seconds."""

BROKER_COLUMNS: tuple[str, ...] = (
    "ServerName", "SessionId", "UserName", "DomainName", "ServerIPAddress", "TSProtocol", "ApplicationType",
    "ResolutionWidth", "ResolutionHeight", "ColorDepth", "CreateTime", "DisconnectTime", "SessionState",
    "CollectionName", "CollectionType", "UnifiedSessionId", "HostServer", "IdleTime", "RemoteFxEnabled",
    "PolledAt", "ConnectionBroker",
)  # fmt: skip
"""The header of a broker snapshot that lists no session: ``RDUserSession``'s properties in their order (from the
in-box RemoteDesktop module), then the two columns the poll adds. With sessions the header is whatever
``Export-Csv`` writes for them."""

NO_USER_MESSAGES: tuple[str, ...] = ("No User exists for",)
"""What ``query user`` prints (with exit code 1) when nobody is logged on. Only the English text is known; on a
localised Windows an empty server is reported as a failure, never taken for a poll that saw no session."""

DEFAULT_INTERVAL = timedelta(minutes=15)
DEFAULT_TIMEOUT = 120.0
"""Seconds one command may run (an unreachable host can keep ``query user`` waiting on RPC)."""

#: A DNS or NetBIOS host name, or an IPv4 address: what may appear in a command line and a file name.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?")
_PLACEHOLDER = re.compile(r"\{(kind|host|polled_at|output)\}")


class Kind(str, Enum):
    """What a target is, and so which command polls it."""

    broker = "broker"
    """A Connection Broker: ``Get-RDUserSession`` lists the sessions of the whole deployment."""
    query_user = "quser"
    """A session host: ``query user /server:HOST`` lists its own sessions."""


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to poll."""

    kind: Kind
    host: str

    def __post_init__(self) -> None:
        if not _HOST.fullmatch(self.host) or ".." in self.host:
            flag = "--broker" if self.kind is Kind.broker else "--server"
            raise ConfigError(f"{flag} {self.host!r}: not a host name (letters, digits, '.', '-', '_')")

    def file_name(self, polled_at: datetime) -> str:
        """``rdusersession_<broker>_<stamp>.csv`` or ``quser_<HOST>_<stamp>.txt``."""
        stamp = polled_at.astimezone(timezone.utc).strftime(STAMP_FORMAT)
        if self.kind is Kind.broker:
            return f"rdusersession_{self.host}_{stamp}.csv"
        return f"quser_{self.host}_{stamp}.txt"


def targets(brokers: Sequence[str] = (), servers: Sequence[str] = ()) -> tuple[Target, ...]:
    """The targets for ``--broker`` and ``--server`` values, each once (host names compared without case)."""
    found: dict[tuple[Kind, str], Target] = {}
    for kind, hosts in ((Kind.broker, brokers), (Kind.query_user, servers)):
        for host in hosts:
            target = Target(kind, host.strip())
            found.setdefault((kind, target.host.lower()), target)
    return tuple(found.values())


# -- commands -----------------------------------------------------------------------------------------------------


def _ps_string(text: str) -> str:
    """A PowerShell single-quoted string literal (no expansion; a quote is doubled)."""
    return "'" + text.replace("'", "''") + "'"


def broker_script(broker: str, polled_at: datetime, output: Path) -> str:
    """The Windows PowerShell 5.1 script that writes one broker snapshot to ``output``.

    One line, no double quotes (so that it passes through a Windows command line unchanged). The CSV is
    ``Export-Csv -NoTypeInformation -Encoding UTF8`` (UTF-8 with a BOM, every field quoted, dates as the machine's
    culture writes them); with no session, the header of :data:`BROKER_COLUMNS` alone. A failure prints its message
    on stderr and exits 1.
    """
    columns = ",".join(_ps_string(column) for column in BROKER_COLUMNS)
    body = "; ".join([
        "Import-Module RemoteDesktop",
        f"$broker = {_ps_string(broker)}",
        f"$polledAt = {_ps_string(polled_at.astimezone(timezone.utc).strftime(POLLED_AT_FORMAT))}",
        f"$out = {_ps_string(str(output))}",
        f"$columns = @({columns})",
        "$sessions = @(Get-RDUserSession -ConnectionBroker $broker | Select-Object -Property *, "
        "@{Name='PolledAt';Expression={$polledAt}}, @{Name='ConnectionBroker';Expression={$broker}})",
        "if ($sessions.Count -gt 0) { $sessions | Export-Csv -LiteralPath $out -NoTypeInformation -Encoding UTF8 } "
        "else { $header = New-Object -TypeName PSObject; foreach ($column in $columns) { Add-Member -InputObject "
        "$header -MemberType NoteProperty -Name $column -Value $null }; ($header | ConvertTo-Csv -NoTypeInformation)"
        "[0] | Set-Content -LiteralPath $out -Encoding UTF8 }",
    ])
    # no statement separator between try's block and catch: PowerShell would end the try statement there
    catch = "catch { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }"
    return f"$ErrorActionPreference = 'Stop'; try {{ {body} }} {catch}"


def broker_command(broker: str, polled_at: datetime, output: Path) -> list[str]:
    """``powershell.exe -NoProfile -NonInteractive -Command <broker_script>`` (Windows PowerShell 5.1, which has
    the RemoteDesktop module; PowerShell 7 does not load it natively)."""
    return ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", broker_script(broker, polled_at, output)]


def _query_exe() -> str:
    """``query.exe``: on PATH, else in ``Sysnative`` (a 32-bit Python on 64-bit Windows does not see System32's
    64-bit-only ``query.exe``)."""
    found = shutil.which("query")
    if found:
        return found
    import os

    sysnative = Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "Sysnative" / "query.exe"
    return str(sysnative) if sysnative.exists() else "query"


def query_user_command(host: str) -> list[str]:
    """``query user /server:HOST``."""
    return [_query_exe(), "user", f"/server:{host}"]


@dataclass(frozen=True, slots=True)
class CommandTemplate:
    """A stand-in for the real commands (tests, or a machine that is not Windows): an argument list in which
    ``{kind}`` (``broker`` or ``quser``), ``{host}``, ``{polled_at}`` (ISO 8601 UTC) and ``{output}`` (the file a
    broker snapshot must be written to) are replaced, each argument on its own (so values with spaces stay one
    argument). It must behave as the command it replaces."""

    argv: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> CommandTemplate:
        """Split ``text`` as a POSIX shell would (quote paths with spaces or backslashes)."""
        try:
            argv = tuple(shlex.split(text))
        except ValueError as exc:
            raise ConfigError(f"command template {text!r}: {exc}") from None
        if not argv:
            raise ConfigError("command template is empty")
        return cls(argv)

    def render(self, target: Target, polled_at: datetime, output: Path) -> list[str]:
        values = {"kind": target.kind.value, "host": target.host,
                  "polled_at": polled_at.astimezone(timezone.utc).strftime(POLLED_AT_FORMAT), "output": str(output)}
        return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], argument) for argument in self.argv]


def runs_here(template: CommandTemplate | None) -> bool:
    """Whether polls can run on this machine: on Windows, or anywhere with a stand-in command."""
    return template is not None or sys.platform == "win32"


NEEDS_WINDOWS = (
    "evtrack poll runs Get-RDUserSession (Windows PowerShell 5.1, RemoteDesktop module) or query user, which exist "
    "only on Windows: run it on a Windows machine (see docs/polling.md), or collect CSVs there with "
    "docs/Collect-RDUserSession.ps1 and read them here with `evtrack ingest` or `evtrack report`"
)


def console_encoding() -> str:
    """The code page ``query user`` prints in: the console's output code page (the OEM code page when there is no
    console); elsewhere the locale's encoding."""
    name = locale.getpreferredencoding(False)
    if sys.platform == "win32":
        import ctypes

        page = int(ctypes.windll.kernel32.GetConsoleOutputCP()) or int(ctypes.windll.kernel32.GetOEMCP())
        name = "utf-8" if page == 65001 else f"cp{page}"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


# -- one poll -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one command produced for one target: the file's bytes, or why there are none."""

    target: Target
    polled_at: datetime
    """When the poll ran (UTC, whole seconds): the ``PolledAt`` column and the file name's stamp."""
    data: bytes | None
    """The snapshot file's content (None when the poll failed)."""
    error: str | None = None
    no_sessions: bool = False
    """``query user`` said nobody is logged on (the file holds what it printed)."""
    warnings: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return self.target.file_name(self.polled_at)


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """One target's part of a poll: the snapshot, where it was written and what ingesting it did."""

    snapshot: Snapshot
    written: Path | None = None
    """The file in the output folder (None without ``--out`` or when nothing was written)."""
    ingested: bool = False
    events_added: int = 0
    error: str | None = None
    """Why the poll of this target failed, or why its snapshot could not be kept."""

    @property
    def target(self) -> Target:
        return self.snapshot.target

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PollRound:
    """One poll of every target."""

    number: int
    """1 for the first poll of a run."""
    started: datetime
    finished: datetime
    results: tuple[SnapshotResult, ...]

    @property
    def failed(self) -> tuple[SnapshotResult, ...]:
        return tuple(result for result in self.results if not result.ok)

    @property
    def kept(self) -> int:
        """Snapshots written to the folder or the store."""
        return sum(1 for result in self.results if result.ok)


@dataclass(frozen=True, slots=True)
class PollSettings:
    targets: tuple[Target, ...]
    out: Path | None = None
    """The folder snapshots are written to."""
    store: Path | None = None
    """The evtrack store snapshots are ingested into."""
    template: CommandTemplate | None = None
    """A stand-in for the real commands."""
    interval: timedelta = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    encoding: str | None = None
    """The code page ``query user`` prints in (default: :func:`console_encoding`)."""

    def __post_init__(self) -> None:
        if not self.targets:
            raise ConfigError("nothing to poll: give --broker BROKER or --server HOST")
        if self.out is None and self.store is None:
            raise ConfigError("nowhere to keep the snapshots: give --out FOLDER and/or --store PATH")
        if self.interval <= timedelta(0):
            raise ConfigError("the interval must be positive")


class Clock(Protocol):
    def now(self) -> datetime:
        """The time now, timezone-aware."""

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
"""What :func:`poll_rounds` and :func:`poll_once` use unless given a clock (tests replace it)."""


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)


def _describe(target: Target, template: CommandTemplate | None) -> str:
    """The command as an administrator would type it (a stand-in is named as one)."""
    if target.kind is Kind.broker:
        what = f"Get-RDUserSession -ConnectionBroker {target.host}"
    else:
        what = f"query user /server:{target.host}"
    return what + (" (stand-in command)" if template is not None else "")


def _decode(data: bytes, encoding: str) -> tuple[str, tuple[str, ...]]:
    try:
        return data.decode(encoding), ()
    except UnicodeDecodeError:
        text = data.decode(encoding, errors="replace")
        bad = text.count("\ufffd")
        return text, (f"{bad} byte sequence{'s' if bad != 1 else ''} not valid in {encoding} kept as U+FFFD",)


def _failure(target: Target, what: str, result: subprocess.CompletedProcess[bytes], encoding: str) -> str:
    """``HOST: `command` failed (exit code N): what it printed`` (its lines joined by ``; ``)."""
    text = _decode(result.stderr if result.stderr.strip() else result.stdout, encoding)[0]
    message = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    return f"{target.host}: `{what}` failed (exit code {result.returncode})" + (f": {message}" if message else "")


def _temporary_folder() -> tempfile.TemporaryDirectory[str]:
    """A scratch folder; on Windows a killed command can still hold a file in it, which must not fail the poll."""
    return tempfile.TemporaryDirectory(prefix="evtrack-poll-", ignore_cleanup_errors=True)


def take_snapshot(target: Target, settings: PollSettings, polled_at: datetime) -> Snapshot:
    """Run ``target``'s command once; a failure is returned in :attr:`Snapshot.error`, never raised."""
    encoding = settings.encoding or console_encoding()
    with _temporary_folder() as folder:
        output = Path(folder) / target.file_name(polled_at)  # where a broker snapshot is written
        if settings.template is not None:
            argv = settings.template.render(target, polled_at, output)
        elif target.kind is Kind.broker:
            argv = broker_command(target.host, polled_at, output)
        else:
            argv = query_user_command(target.host)
        what = _describe(target, settings.template)
        try:
            result = _run(argv, settings.timeout)
        except subprocess.TimeoutExpired:
            return Snapshot(target, polled_at, None,
                            f"{target.host}: `{what}` did not finish within {settings.timeout:g} s")
        except OSError as exc:
            return Snapshot(target, polled_at, None, f"{target.host}: cannot run `{what}`: {exc.strerror or exc}")
        if target.kind is Kind.broker:
            return _broker_snapshot(target, polled_at, what, result, output, encoding)
        return _query_user_snapshot(target, polled_at, what, result, encoding)


def _broker_snapshot(target: Target, polled_at: datetime, what: str, result: subprocess.CompletedProcess[bytes],
                     output: Path, encoding: str) -> Snapshot:
    """The CSV the command wrote, byte for byte."""
    if result.returncode != 0:
        return Snapshot(target, polled_at, None, _failure(target, what, result, encoding))
    try:
        data = output.read_bytes()
    except OSError:
        return Snapshot(target, polled_at, None, f"{target.host}: `{what}` wrote no snapshot")
    return Snapshot(target, polled_at, data)


def _query_user_snapshot(target: Target, polled_at: datetime, what: str, result: subprocess.CompletedProcess[bytes],
                         encoding: str) -> Snapshot:
    """The text as printed, from the console code page to UTF-8; ``No User exists for *`` (exit code 1, on stderr)
    is kept too: it is what the tool prints for a server nobody is logged on to."""
    stdout, warnings = _decode(result.stdout, encoding)
    if result.returncode == 0 and stdout.strip():
        return Snapshot(target, polled_at, stdout.encode("utf-8"), warnings=warnings)
    stderr, stderr_warnings = _decode(result.stderr, encoding)
    if result.returncode == 1 and not stdout.strip() and any(text in stderr for text in NO_USER_MESSAGES):
        return Snapshot(target, polled_at, stderr.encode("utf-8"), no_sessions=True, warnings=stderr_warnings)
    if result.returncode == 0:
        return Snapshot(target, polled_at, None, f"{target.host}: `{what}` printed nothing")
    return Snapshot(target, polled_at, None, _failure(target, what, result, encoding))


def _keep(snapshots: Sequence[Snapshot], settings: PollSettings) -> list[SnapshotResult]:
    """Write the snapshots to the folder and/or ingest them into the store (from the folder's files, or from a
    temporary folder under the same names: the readers take the host and the poll time from the name)."""
    from evtrack.output import write_atomic

    results = [SnapshotResult(snapshot, error=snapshot.error) for snapshot in snapshots]
    with contextlib.ExitStack() as stack:
        folder = settings.out
        if folder is None:
            folder = Path(stack.enter_context(_temporary_folder()))
        files: dict[int, Path] = {}
        for index, snapshot in enumerate(snapshots):
            if snapshot.data is None:
                continue
            path = folder / snapshot.file_name
            try:
                write_atomic(path, snapshot.data)
            except (OSError, EvtrackError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                results[index] = replace(results[index],
                                         error=f"{snapshot.target.host}: cannot write {path}: {reason}")
                continue
            files[index] = path
            if settings.out is not None:
                results[index] = replace(results[index], written=path)
        if settings.store is not None and files:
            outcomes = _ingest(settings.store, list(files.values()))
            for (index, path), (added, why) in zip(files.items(), outcomes, strict=True):
                if why is None:
                    results[index] = replace(results[index], ingested=True, events_added=added)
                else:
                    kept = f" (kept in {path})" if settings.out is not None else ""
                    results[index] = replace(results[index], error=f"{snapshots[index].target.host}: snapshot not "
                                             f"ingested into {settings.store}: {why}{kept}")
    return results


def _ingest(store_path: Path, files: list[Path]) -> list[tuple[int, str | None]]:
    """Ingest ``files`` as ``evtrack ingest`` would; per file the events added, or why it was not ingested."""
    from evtrack.catalogue import read_plan
    from evtrack.store import STATUS_FAILED, Store
    from evtrack.windows import resolve_zone

    # the snapshots were just taken on this machine: their local times are in its zone
    plan = read_plan(local_zone=resolve_zone("local").info)
    try:
        with Store.open(store_path, create=True) as store:
            ingest = store.ingest(files, plan=plan)
    except EvtrackError as exc:
        return [(0, str(exc))] * len(files)
    by_path = {outcome.path: outcome for outcome in ingest.files}
    ignored = {issue.path: issue.reason for issue in ingest.ignored}
    outcomes: list[tuple[int, str | None]] = []
    for path in files:
        outcome = by_path.get(path)
        if outcome is None:
            outcomes.append((0, ignored.get(path, "not read")))
        elif outcome.status == STATUS_FAILED:
            outcomes.append((0, outcome.error or "not read"))
        else:
            outcomes.append((outcome.events_added, None))
    return outcomes


def _utc_second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise EvtrackError("the poll clock must give timezone-aware times")
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def poll_once(settings: PollSettings, *, clock: Clock | None = None, number: int = 1) -> PollRound:
    """Poll every target once and keep the snapshots; failures are in the result, not raised."""
    clock = clock or SYSTEM_CLOCK
    started = _utc_second(clock.now())
    snapshots = [take_snapshot(target, settings, _utc_second(clock.now())) for target in settings.targets]
    results = _keep(snapshots, settings)
    return PollRound(number, started, _utc_second(clock.now()), tuple(results))


def poll_rounds(settings: PollSettings, *, clock: Clock | None = None) -> Iterator[PollRound]:
    """Poll every ``settings.interval``, for ever: the polls keep to the schedule of the first (a poll that takes
    longer than the interval makes the next one start at the next slot of that schedule, not later and later).

    Stop it by leaving the loop (a Ctrl-C during the wait raises :class:`KeyboardInterrupt` from it)."""
    clock = clock or SYSTEM_CLOCK
    step = settings.interval.total_seconds()
    start = clock.now()
    number = 0
    while True:
        number += 1
        yield poll_once(settings, clock=clock, number=number)
        now = clock.now()
        slot = math.floor((now - start).total_seconds() / step) + 1
        clock.sleep(max(0.0, (start + timedelta(seconds=slot * step) - now).total_seconds()))


def check_store(path: Path) -> bool:
    """Open (and make) the store before the first poll, so that a bad ``--store`` stops the run at once; whether
    the store was created."""
    from evtrack.store import Store

    with Store.open(path, create=True) as store:
        return store.created


def check_out(folder: Path) -> None:
    """Make the output folder (its parent must exist: a mistyped path must not leave folders behind)."""
    if folder.is_dir():
        return
    try:
        folder.mkdir()
    except FileNotFoundError:
        raise ConfigError(f"--out {folder}: the folder {folder.parent} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--out {folder}: cannot create it: {exc.strerror or exc}") from None
