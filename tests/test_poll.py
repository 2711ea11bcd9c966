"""``evtrack poll``: snapshots from a stand-in for Get-RDUserSession and ``query user``, their file names and
content, failures per host, the loop's schedule (a fake clock: nothing sleeps), atomic writes, the real command
lines, and the help in docs/cli.md.

The stand-in is a small Python script (written by :func:`standin`) that behaves as the real commands do: for a
broker it writes the CSV to the file it is given, for ``query user`` it prints the text (in a given code page) and
exits 1 with ``No User exists for *`` for an empty server. Its texts are literal copies of the real shapes
(``../shared/DOMAIN.md`` B1, B2).
"""

from __future__ import annotations

import itertools
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack import poll as polling
from evtrack.cli import app
from evtrack.errors import ConfigError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 14, 9, 15, tzinfo=timezone.utc)

BROKER_HEADER = (
    '"ServerName","SessionId","UserName","DomainName","ServerIPAddress","TSProtocol","ApplicationType",'
    '"ResolutionWidth","ResolutionHeight","ColorDepth","CreateTime","DisconnectTime","SessionState",'
    '"CollectionName","CollectionType","UnifiedSessionId","HostServer","IdleTime","RemoteFxEnabled","PolledAt",'
    '"ConnectionBroker"'
)
BROKER_ROWS = (
    '"RDSH01.contoso.com","2","alice","CONTOSO","10.0.0.11","","","1920","1080","32","1/14/2026 9:05:33 AM",,'
    '"STATE_ACTIVE","Desktops","RD_FARM_RDSH","5","RDSH01.contoso.com","0","False","{polled_at}",'
    '"rdcb01.contoso.com"\r\n'
    '"RDSH02.contoso.com","3","bob","CONTOSO","10.0.0.12","","","1280","1024","32","1/13/2026 4:41:07 PM",'
    '"1/13/2026 6:02:10 PM","STATE_DISCONNECTED","Desktops","RD_FARM_RDSH","7","RDSH02.contoso.com","2512000",'
    '"False","{polled_at}","rdcb01.contoso.com"\r\n'
)
QUSER_EN = (
    " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
    " alice                 rdp-tcp#3           2  Active          .  1/14/2026 9:05 AM\r\n"
    " bob                                       3  Disc         1:21  1/13/2026 4:41 PM\r\n"
)
QUSER_FR = (
    " UTILISATEUR           SESSION            ID  ÉTAT    TEMPS INACT TEMPS SESSION\r\n"
    " hélène                rdp-tcp#1           2  Actif           .  14/01/2026 09:05\r\n"
    " andré                                     4  Déco         1:21  13/01/2026 16:41\r\n"
)
NO_USER = "No User exists for *\r\n"

STANDIN = '''\
import sys, time
kind, host, polled_at, output = sys.argv[1:5]
behaviour = BEHAVIOUR[host]
if behaviour.get("sleep"):
    time.sleep(behaviour["sleep"])
if "file" in behaviour:
    with open(output, "wb") as handle:
        handle.write(behaviour["file"].replace(b"{polled_at}", polled_at.encode()))
sys.stdout.buffer.write(behaviour.get("stdout", b""))
sys.stderr.buffer.write(behaviour.get("stderr", b""))
sys.exit(behaviour.get("exit", 0))
'''

BEHAVIOUR: dict[str, dict[str, object]] = {
    "rdcb01.contoso.com": {"file": ("\ufeff" + BROKER_HEADER + "\r\n" + BROKER_ROWS).encode("utf-8")},
    "rdcb02.contoso.com": {"file": ("\ufeff" + BROKER_HEADER + "\r\n").encode("utf-8")},  # no session
    "rdcb03.contoso.com": {"stderr": b"The RD Connection Broker server is not available.\r\n", "exit": 1},
    "rdcb04.contoso.com": {"file": ("\ufeff" + BROKER_HEADER + "\r\n" + BROKER_ROWS[:40]).encode("utf-8"),
                           "stderr": b"killed\r\n", "exit": 1},  # half a CSV, then a failure
    "rdsh01": {"stdout": QUSER_EN.encode("cp437")},
    "rdsh02": {"stderr": NO_USER.encode("cp437"), "exit": 1},
    "rdsh03": {"stderr": b"Error 0x000006BA enumerating sessionnames\r\nError [1722]:The RPC server is "
                         b"unavailable.\r\n", "exit": 1},
    "rdsh04": {"stdout": QUSER_FR.encode("cp850")},
    "rdsh05": {"sleep": 60, "stdout": QUSER_EN.encode("cp437")},
}


@pytest.fixture
def template(tmp_path: Path) -> str:
    """The ``--command-template`` that runs the stand-in."""
    script = tmp_path / "standin.py"
    script.write_text(f"BEHAVIOUR = {BEHAVIOUR!r}\n{STANDIN}", encoding="utf-8")
    return " ".join(shlex.quote(part) for part in (sys.executable, str(script), "{kind}", "{host}",
                                                    "{polled_at}", "{output}"))


class FakeClock:
    """Time that moves only when slept on (or by ``tick`` per reading); ``interrupt_after`` sleeps end it with a
    Ctrl-C."""

    def __init__(self, start: datetime = T0, tick: timedelta = timedelta(0), interrupt_after: int | None = None):
        self.moment = start
        self.tick = tick
        self.sleeps: list[float] = []
        self.interrupt_after = interrupt_after

    def now(self) -> datetime:
        moment = self.moment
        self.moment += self.tick
        return moment

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(interrupt_after=2)
    monkeypatch.setattr(polling, "SYSTEM_CLOCK", fake)
    return fake


def _settings(template: str, tmp_path: Path, *, brokers: tuple[str, ...] = (), servers: tuple[str, ...] = (),
              **kwargs: object) -> polling.PollSettings:
    options: dict[str, object] = {"encoding": "cp437", **kwargs}
    return polling.PollSettings(polling.targets(brokers, servers), out=tmp_path / "out",
                                template=polling.CommandTemplate.parse(template), **options)  # type: ignore[arg-type]


def _poll(*args: str) -> list[str]:
    return ["poll", *args]


# -- the CLI: --once ----------------------------------------------------------------------------------------------


def test_once_writes_each_snapshot_under_its_contract_name(tmp_path: Path, template: str, clock: FakeClock) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, _poll("--broker", "rdcb01.contoso.com", "--server", "rdsh01", "--out", str(out),
                                      "--once", "--command-template", template))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    broker = out / "rdusersession_rdcb01.contoso.com_20260114T091500Z.csv"
    quser = out / "quser_rdsh01_20260114T091500Z.txt"
    assert sorted(out.iterdir()) == [quser, broker]
    assert result.stderr == (f"2026-01-14T09:15:00Z rdcb01.contoso.com: written {broker}\n"
                             f"2026-01-14T09:15:00Z rdsh01: written {quser}\n")
    # the broker CSV byte for byte as the command wrote it, PolledAt the poll time (the stamp in the name)
    assert broker.read_bytes() == ("\ufeff" + BROKER_HEADER + "\r\n" + BROKER_ROWS).replace(
        "{polled_at}", "2026-01-14T09:15:00Z").encode("utf-8")
    # query user: the text as printed (CRLF kept), decoded from the console code page, kept as UTF-8
    assert quser.read_bytes() == QUSER_EN.encode("utf-8")
    assert clock.sleeps == []


def test_no_user_exists_is_a_poll_that_saw_no_session(tmp_path: Path, template: str, clock: FakeClock) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, _poll("--server", "rdsh02", "--broker", "rdcb02.contoso.com", "--out", str(out),
                                      "--once", "--command-template", template))
    assert result.exit_code == 0, result.output
    quser = out / "quser_rdsh02_20260114T091500Z.txt"
    broker = out / "rdusersession_rdcb02.contoso.com_20260114T091500Z.csv"
    assert quser.read_bytes().decode("utf-8") == NO_USER  # what the tool printed, for the reader
    assert broker.read_bytes() == ("\ufeff" + BROKER_HEADER + "\r\n").encode("utf-8")  # header only
    assert result.stderr == (f"2026-01-14T09:15:00Z rdcb02.contoso.com: written {broker}\n"
                             f"2026-01-14T09:15:00Z rdsh02: no sessions; written {quser}\n")


def test_a_failing_host_is_named_and_the_others_are_still_written(tmp_path: Path, template: str,
                                                                  clock: FakeClock) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, _poll("--server", "rdsh03", "--server", "rdsh01", "--broker", "rdcb03.contoso.com",
                                      "--out", str(out), "--once", "-q", "--command-template", template))
    assert result.exit_code == 1
    assert [path.name for path in out.iterdir()] == ["quser_rdsh01_20260114T091500Z.txt"]
    assert result.stderr == (
        "error: rdcb03.contoso.com: `Get-RDUserSession -ConnectionBroker rdcb03.contoso.com (stand-in command)` "
        "failed (exit code 1): The RD Connection Broker server is not available.\n"
        "error: rdsh03: `query user /server:rdsh03 (stand-in command)` failed (exit code 1): Error 0x000006BA "
        "enumerating sessionnames; Error [1722]:The RPC server is unavailable.\n"
    )


def test_elsewhere_than_windows_it_says_it_needs_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling.sys, "platform", "linux")
    result = runner.invoke(app, _poll("--broker", "rdcb01", "--out", str(tmp_path), "--once"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {polling.NEEDS_WINDOWS}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "rdsh01", "--once"], "nowhere to keep the snapshots: give --out FOLDER and/or --store PATH"),
    (["--out", "{out}", "--once"], "nothing to poll: give --broker BROKER or --server HOST"),
    (["--server", "../rdsh01", "--out", "{out}", "--once"],
     "--server '../rdsh01': not a host name (letters, digits, '.', '-', '_')"),
    (["--broker", "rdcb 01", "--out", "{out}", "--once"],
     "--broker 'rdcb 01': not a host name (letters, digits, '.', '-', '_')"),
    (["--server", "rdsh01", "--out", "{missing_out}", "--once"],
     "--out {missing_out}: the folder {missing} does not exist"),
])
def test_bad_flags_are_clear_errors(tmp_path: Path, template: str, args: list[str], message: str) -> None:
    paths = {"out": tmp_path / "out", "missing": tmp_path / "missing", "missing_out": tmp_path / "missing" / "out"}
    args = [arg.format(**paths) for arg in args]
    message = message.format(**paths)
    result = runner.invoke(app, _poll(*args, "--command-template", template))
    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


# -- the loop -----------------------------------------------------------------------------------------------------


def test_the_loop_polls_every_interval_until_ctrl_c_and_says_how_many(tmp_path: Path, template: str,
                                                                      clock: FakeClock) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, _poll("--server", "rdsh01", "--server", "rdsh02", "--out", str(out), "-q",
                                      "--interval", "15", "--command-template", template))
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [900.0, 900.0]  # the third wait was interrupted
    assert sorted(path.name for path in out.iterdir()) == [
        f"quser_{host}_20260114T{stamp}Z.txt" for host in ("rdsh01", "rdsh02") for stamp in ("091500", "093000",
                                                                                             "094500")]
    assert result.stderr == "stopped: 3 polls, 6 snapshots written, 0 failed\n"


def test_a_loop_with_a_failing_host_exits_1_when_stopped(tmp_path: Path, template: str, clock: FakeClock) -> None:
    result = runner.invoke(app, _poll("--server", "rdsh03", "--server", "rdsh01", "--out", str(tmp_path / "out"),
                                      "-q", "--command-template", template))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "stopped: 3 polls, 3 snapshots written, 3 failed"


def test_the_loop_keeps_to_its_schedule(tmp_path: Path, template: str) -> None:
    settings = _settings(template, tmp_path, servers=("rdsh01",), interval=timedelta(minutes=15))
    polling.check_out(tmp_path / "out")
    clock = FakeClock(tick=timedelta(seconds=100))  # every reading of the clock costs 100 s: polls take time
    rounds = list(itertools.islice(polling.poll_rounds(settings, clock=clock), 3))
    # start T0 (+100); poll 1 starts T0+100, the snapshot T0+200, ends T0+300; the wait is read at T0+400: 500 s
    assert clock.sleeps == [500.0, 500.0]
    assert [r.started for r in rounds] == [T0 + timedelta(seconds=s) for s in (100, 1000, 1900)]
    assert [r.number for r in rounds] == [1, 2, 3]

    slow = FakeClock(tick=timedelta(seconds=400))  # a poll longer than the interval: the next slot, not later
    list(itertools.islice(polling.poll_rounds(settings, clock=slow), 2))
    assert slow.sleeps == [200.0]  # read at T0+1600: slot 2 is T0+1800


# -- library-level behaviour --------------------------------------------------------------------------------------


def test_query_user_text_is_decoded_from_the_console_code_page(tmp_path: Path, template: str) -> None:
    settings = _settings(template, tmp_path, servers=("rdsh04",), encoding="cp850")
    polling.check_out(tmp_path / "out")
    (result,) = polling.poll_once(settings, clock=FakeClock()).results
    assert result.ok and result.written is not None
    assert result.written.read_bytes().decode("utf-8") == QUSER_FR  # Déco, hélène, andré intact


def test_bytes_not_in_the_code_page_are_kept_visibly(tmp_path: Path, template: str) -> None:
    settings = _settings(template, tmp_path, servers=("rdsh04",), encoding="utf-8")  # cp850 text read as UTF-8
    polling.check_out(tmp_path / "out")
    (result,) = polling.poll_once(settings, clock=FakeClock()).results
    assert result.ok
    assert result.snapshot.warnings == ("5 byte sequences not valid in utf-8 kept as U+FFFD",)


def test_a_command_that_hangs_is_given_up(tmp_path: Path, template: str) -> None:
    settings = _settings(template, tmp_path, servers=("rdsh05", "rdsh01"), timeout=2.0)  # rdsh05 sleeps 60 s
    polling.check_out(tmp_path / "out")
    hung, fine = polling.poll_once(settings, clock=FakeClock()).results
    assert hung.error == "rdsh05: `query user /server:rdsh05 (stand-in command)` did not finish within 2 s"
    assert fine.ok


# -- atomic writes ------------------------------------------------------------------------------------------------


def test_a_failed_write_leaves_no_file(tmp_path: Path, template: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(template, tmp_path, servers=("rdsh01",))
    out = tmp_path / "out"
    polling.check_out(out)

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evtrack.output.os.replace", no_rename)
    (result,) = polling.poll_once(settings, clock=FakeClock()).results
    assert result.error == f"rdsh01: cannot write {out / 'quser_rdsh01_20260114T091500Z.txt'}: No space left on device"
    assert list(out.iterdir()) == []  # neither the snapshot nor its temporary file


def test_half_a_snapshot_from_a_failed_command_is_never_written(tmp_path: Path, template: str) -> None:
    settings = _settings(template, tmp_path, brokers=("rdcb04.contoso.com",))
    out = tmp_path / "out"
    polling.check_out(out)
    (result,) = polling.poll_once(settings, clock=FakeClock()).results
    assert result.error == ("rdcb04.contoso.com: `Get-RDUserSession -ConnectionBroker rdcb04.contoso.com (stand-in "
                            "command)` failed (exit code 1): killed")
    assert list(out.iterdir()) == []


# -- the store ----------------------------------------------------------------------------------------------------


def test_snapshots_are_ingested_into_the_store(tmp_path: Path, template: str, clock: FakeClock) -> None:
    from evtrack.store import Store

    db = tmp_path / "store.sqlite3"
    result = runner.invoke(app, _poll("--broker", "rdcb01.contoso.com", "--server", "rdsh01", "--server", "rdsh02",
                                      "--store", str(db), "--once", "--command-template", template))
    assert result.exit_code == 0, result.output
    with Store.open(db, create=False) as store:
        info = store.info()
    assert info.files == 3
    # the session hosts the broker listed, the host query user polled, and the empty one (its poll is coverage)
    assert {"rdsh01.contoso.com", "rdsh02.contoso.com", "rdsh01", "rdsh02"} <= {host.lower() for host in info.hosts}
    assert "ingested (" in result.stderr


def test_a_snapshot_the_store_cannot_take_is_an_error_and_stays_in_the_folder(tmp_path: Path,
                                                                             template: str) -> None:
    db, out = tmp_path / "store.sqlite3", tmp_path / "out"
    db.write_bytes(b"not a database")  # made unusable after the run began
    settings = _settings(template, tmp_path, servers=("rdsh01",), store=db)
    polling.check_out(out)
    (result,) = polling.poll_once(settings, clock=FakeClock()).results
    snapshot = out / "quser_rdsh01_20260114T091500Z.txt"
    assert snapshot.read_bytes() == QUSER_EN.encode("utf-8")
    assert not result.ingested
    assert result.error == (f"rdsh01: snapshot not ingested into {db}: not an evtrack store: {db} "
                            f"(kept in {snapshot})")


def test_a_bad_store_stops_the_run_before_the_first_poll(tmp_path: Path, template: str, clock: FakeClock) -> None:
    db, out = tmp_path / "store.sqlite3", tmp_path / "out"
    db.write_bytes(b"not a database")
    result = runner.invoke(app, _poll("--server", "rdsh01", "--out", str(out), "--store", str(db), "--once",
                                      "--command-template", template))
    assert result.exit_code == 1
    assert result.stderr == f"error: not an evtrack store: {db}\n"
    assert list(out.iterdir()) == []


# -- the real commands --------------------------------------------------------------------------------------------


def test_the_broker_command_line() -> None:
    output = Path(r"C:\Users\o'brien\AppData\Local\Temp\evtrack-poll-1\rdusersession_rdcb01_20260114T091500Z.csv")
    argv = polling.broker_command("rdcb01.contoso.com", T0, output)
    assert argv[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"]
    script = argv[4]
    assert '"' not in script and "\n" not in script  # passes through a Windows command line as one argument
    assert subprocess.list2cmdline(argv).endswith(f' -Command "{script}"')
    assert "$broker = 'rdcb01.contoso.com'" in script
    assert "$polledAt = '2026-01-14T09:15:00Z'" in script
    assert r"$out = 'C:\Users\o''brien\AppData\Local\Temp\evtrack-poll-1\rdusersession_rdcb01_20260114T091500Z.csv'" \
        in script
    assert ("Get-RDUserSession -ConnectionBroker $broker | Select-Object -Property *, "
            "@{Name='PolledAt';Expression={$polledAt}}, @{Name='ConnectionBroker';Expression={$broker}}") in script
    assert "Export-Csv -LiteralPath $out -NoTypeInformation -Encoding UTF8" in script
    assert script.startswith("$ErrorActionPreference = 'Stop'; try { Import-Module RemoteDesktop; ")
    # the try block is followed by catch with no statement separator between them (PowerShell's grammar)
    assert script.endswith(" } } catch { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }")


def test_the_query_user_command_line() -> None:
    argv = polling.query_user_command("rdsh01")
    assert Path(argv[0]).stem.lower() == "query"
    assert argv[1:] == ["user", "/server:rdsh01"]


def test_the_shipped_script_writes_what_poll_writes() -> None:
    """docs/Collect-RDUserSession.ps1 and the poll's own command agree on the name, the columns and the encoding."""
    script = (ROOT / "docs" / "Collect-RDUserSession.ps1").read_text(encoding="utf-8")
    columns = ",".join(f"'{column}'" for column in polling.BROKER_COLUMNS)
    assert f"$Columns = @({columns})" in script
    assert "rdusersession_{0}_{1}.csv" in script
    assert "'yyyyMMdd''T''HHmmss''Z'''" in script and "'yyyy-MM-dd''T''HH:mm:ss''Z'''" in script
    assert "-NoTypeInformation -Encoding UTF8" in script
    assert "[System.IO.File]::Move($temp, $final)" in script


def test_target_names_become_file_names() -> None:
    assert polling.targets(["rdcb01.contoso.com"], ["RDSH01", "rdsh01", "rdsh02"]) == (
        polling.Target(polling.Kind.broker, "rdcb01.contoso.com"),
        polling.Target(polling.Kind.query_user, "RDSH01"),
        polling.Target(polling.Kind.query_user, "rdsh02"),
    )
    assert polling.Target(polling.Kind.query_user, "RDSH01").file_name(
        datetime(2026, 1, 14, 10, 15, 1, tzinfo=timezone(timedelta(hours=1)))) == "quser_RDSH01_20260114T091501Z.txt"
    with pytest.raises(ConfigError):
        polling.Target(polling.Kind.query_user, "rdsh01/../x")


# -- docs ---------------------------------------------------------------------------------------------------------


def test_the_help_is_in_docs_cli_md_and_the_stand_in_is_hidden() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("## `evtrack poll`", 1)[1].split("\n## ", 1)[0]
    for flag in ("--broker", "--server", "--out", "--store", "--once", "--interval", "--timeout"):
        assert flag in section
    assert "--command-template" not in doc
    assert "docs/polling.md" in section


def test_a_folder_scan_ignores_a_poll_still_being_written(tmp_path: Path) -> None:
    """evtrack poll writes ``.<name>.<random>.tmp`` then renames it: a report reading the folder meanwhile must not
    read half a poll as a whole one; it says it left the file out."""
    from evtrack.reading import read_inputs

    (tmp_path / ".rdusersession_cb_20260114T091500Z.csv.x1y2.tmp").write_text(
        '"ServerName","SessionId","UserName","DomainName","SessionState","CreateTime","PolledAt"\r\n', "utf-8")
    result = read_inputs([tmp_path])
    assert not result.files and not result.file_errors
    assert [i.reason for i in result.ignored] == [
        "a temporary file: a write in progress (e.g. by evtrack poll), read once it is complete"]
