"""Shared fixtures: the real logs in ../shared/evtx (skipped when absent) and hand-written XML events."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "evtx"

EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
LSM_CHANNEL = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
RCM_CHANNEL = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"


SHARED_ABSENT = "../shared/evtx is not present (a fresh clone has no shared data)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The one way to need the real logs: mark a test (or module) ``shared``, or take the ``shared_evtx``
    fixture; either skips cleanly where ../shared/evtx is absent."""
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=SHARED_ABSENT)
    for item in items:
        if item.get_closest_marker("shared") or "shared_evtx" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def workers_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """``read_inputs`` with several jobs hands every file to its worker processes, whatever the input's size (the
    caller reads along and small inputs skip the pool otherwise): for tests of what workers receive."""
    import evtrack.reading

    monkeypatch.setattr(evtrack.reading, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(evtrack.reading, "CALLER_READS", False)


@pytest.fixture(scope="session")
def new_york_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six users on two hosts, January and February 2024, written in America/New_York (seed 17)."""
    from datetime import date

    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("new-york-fleet")
    write_sample(out, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), tz="America/New_York",
                 seed=17, noise_ratio=0.1)
    return out


@pytest.fixture
def shared_evtx() -> Path:
    """The folder of real logs (tests taking it are skipped where it is absent)."""
    return SHARED


def xml_event(
    event_id: int,
    *,
    channel: str = "Security",
    computer: str = "RDSH01.contoso.local",
    provider: str = "Microsoft-Windows-Security-Auditing",
    time: str = "2024-03-04T09:15:00.1234567Z",
    record_id: int = 1,
    data: dict[str, str] | None = None,
    user_data: dict[str, str] | None = None,
    user_data_element: str = "EventXML",
) -> str:
    """One `<Event>` as `wevtutil qe /f:xml` writes it: EventData/Data[@Name] or UserData/<element>/<child>."""
    if user_data is not None:
        children = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in user_data.items())
        payload = f'<UserData><{user_data_element} xmlns="Event_NS">{children}</{user_data_element}></UserData>'
    else:
        items = "".join(f'<Data Name="{k}">{escape(v)}</Data>' for k, v in (data or {}).items())
        payload = f"<EventData>{items}</EventData>"
    return (
        f'<Event xmlns="{EVENT_NS}"><System><Provider Name="{provider}"/><EventID>{event_id}</EventID>'
        f'<TimeCreated SystemTime="{time}"/><EventRecordID>{record_id}</EventRecordID>'
        f"<Channel>{channel}</Channel><Computer>{computer}</Computer></System>{payload}</Event>"
    )


def logon_4624(logon_type: int, *, user: str = "alice", domain: str = "CONTOSO", ip: str = "10.0.0.5",
               sid: str = "S-1-5-21-1-2-3-1105", elevated: str = "%%1843", **kw: object) -> str:
    return xml_event(
        4624,
        data={
            "TargetUserSid": sid, "TargetUserName": user, "TargetDomainName": domain, "TargetLogonId": "0x1A2B3C",
            "LogonType": str(logon_type), "IpAddress": ip, "IpPort": "50123", "ElevatedToken": elevated,
        },
        **kw,  # type: ignore[arg-type]
    )


def lsm(event_id: int, *, user: str = "CONTOSO\\alice", address: str | None = "10.0.0.5", session: str = "3",
        **kw: object) -> str:
    fields = {"User": user, "SessionID": session}
    if address is not None:
        fields["Address"] = address
    return xml_event(event_id, channel=LSM_CHANNEL, provider="Microsoft-Windows-TerminalServices-LocalSessionManager",
                     user_data=fields, **kw)  # type: ignore[arg-type]


def write_events(path: Path, *events: str, root: bool = False) -> Path:
    body = "".join(events)
    path.write_text(f"<Events>{body}</Events>" if root else body, encoding="utf-8")
    return path
