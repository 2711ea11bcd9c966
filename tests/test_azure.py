"""Azure Monitor / Sentinel exports (evtrack.sources.azure): hand-written files in the shapes the real tools write,
with the answers worked out by hand.

Times: 2026-01-01T00:00:00Z is 1_767_225_600 s since the epoch; each later day adds 86_400 s. So
2026-01-14T09:05:33Z = 1_767_225_600 + 13 * 86_400 + 9 * 3600 + 5 * 60 + 33 = 1_768_381_533 s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from evtrack.catalogue import read_plan
from evtrack.errors import SourceError
from evtrack.sources import azure
from evtrack.sources.base import FileStats, RawEvent, ReadPlan
from evtrack.synth import azure as synth
from tests.conftest import xml_event

JAN14_0905 = 1_768_381_533_000_000  # 2026-01-14T09:05:33Z in µs
DAY = 86_400_000_000
HOUR = 3_600_000_000
LSM = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
GATEWAY = "Microsoft-Windows-TerminalServices-Gateway/Operational"
BOM = "\ufeff"


class FakeCoverage:
    """A coverage sink that keeps stated intervals and the evidence rows' reach, and refuses everything else:
    evidence rows never cover."""

    def __init__(self) -> None:
        self.intervals: list[tuple[str, str, int, int]] = []
        self.reaches: list[tuple[str, int, int]] = []

    def add(self, event: RawEvent) -> None:
        raise AssertionError(f"evidence went to coverage: {event}")

    def add_block(self, computer: str, channel: str, ids: Any, times: Any, untimed: int = 0) -> None:
        raise AssertionError("add_block")

    def note_clear(self, event: RawEvent) -> None:
        raise AssertionError("note_clear")

    def note_kdc(self, computer: str, channel: str) -> None:
        raise AssertionError("note_kdc")

    def add_interval(self, computer: str, channel: str, start_us: int, end_us: int, *,
                     needs_evidence: bool = True) -> None:
        self.intervals.append((computer, channel, start_us, end_us))

    def add_reach(self, channel: str, first_us: int, last_us: int) -> None:
        self.reaches.append((channel, first_us, last_us))

    def break_segments(self) -> None:
        raise AssertionError("break_segments")


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def read_all(path: Path, plan: ReadPlan | None = None,
             coverage: FakeCoverage | None = None) -> tuple[list[RawEvent], FileStats, FakeCoverage]:
    stats = FileStats(path)
    sink = coverage if coverage is not None else FakeCoverage()
    events = list(azure.read(path, stats, plan=plan or read_plan(), coverage=sink))
    return events, stats, sink


def looks(path: Path) -> bool:
    return azure.looks_like(path.read_bytes()[:65536], path)


# --- Portal CSV -------------------------------------------------------------------------------------------------

#: The portal's "Export > CSV (all columns)" of a SecurityEvent query, en-US display language, UTC: BOM, CRLF,
#: the datetime header suffixed " [UTC]", dates quoted for their comma, EventData multi-line XML with doubled
#: quotes, the 4778's TargetUserName empty and its own fields (AccountName, ClientAddress ...) filled.
PORTAL_SECURITY = BOM + (
    '"TimeGenerated [UTC]",Computer,EventID,Activity,Account,TargetUserName,TargetDomainName,TargetUserSid,'
    "LogonType,LogonTypeName,IpAddress,LogonProcessName,AccountName,AccountDomain,LogonID,SessionName,ClientName,"
    "ClientAddress,EventData\r\n"
    '"1/14/2026, 9:05:33.123 AM","RDSH01.contoso.local",4624,"4624 - An account was successfully logged on.",'
    '"CONTOSO\\alice",alice,CONTOSO,"S-1-5-21-1111-2222-3333-1104",10,"10 - RemoteInteractive","10.1.2.3",'
    '"User32 ",,,,,,,"<EventData xmlns=""http://schemas.microsoft.com/win/2004/08/events/event"">\r\n'
    '  <Data Name=""SubjectUserSid"">S-1-5-18</Data>\r\n'
    '  <Data Name=""TargetUserName"">alice</Data>\r\n'
    '  <Data Name=""TargetLogonId"">0x2f5a1</Data>\r\n'
    '  <Data Name=""ElevatedToken"">%%1843</Data>\r\n'
    '</EventData>"\r\n'
    '"1/14/2026, 1:30:00.000 PM","RDSH01.contoso.local",4778,"4778 - A session was reconnected to a Window '
    'Station.",,,,,,,,,bob,CONTOSO,"0x3a9f0","RDP-Tcp#4",LAPTOP7,"10.1.2.4",\r\n'
)


def test_portal_csv_security_event(tmp_path: Path) -> None:
    path = write(tmp_path, "query_data.csv", PORTAL_SECURITY)
    assert looks(path)
    events, stats, sink = read_all(path)
    assert [(e.channel, e.event_id, e.computer, e.time_us, e.record_id) for e in events] == [
        ("Security", 4624, "RDSH01.contoso.local", JAN14_0905 + 123_000, None),
        ("Security", 4778, "RDSH01.contoso.local", JAN14_0905 + (4 * 3600 + 24 * 60 + 27) * 1_000_000, None),
    ]
    logon, reconnect = events
    assert logon.provider == "Microsoft-Windows-Security-Auditing"
    # columns first, then the EventData XML for what the columns leave out; derived columns are not data
    assert logon.data == {
        "SubjectUserSid": "S-1-5-18", "TargetUserName": "alice", "TargetLogonId": "0x2f5a1",
        "ElevatedToken": "%%1843", "TargetDomainName": "CONTOSO", "TargetUserSid": "S-1-5-21-1111-2222-3333-1104",
        "LogonType": "10", "IpAddress": "10.1.2.3", "LogonProcessName": "User32 ",
    }
    assert reconnect.data == {"AccountName": "bob", "AccountDomain": "CONTOSO", "LogonID": "0x3a9f0",
                              "SessionName": "RDP-Tcp#4", "ClientName": "LAPTOP7", "ClientAddress": "10.1.2.4"}
    assert stats.records == 2 and stats.per_channel == {"Security": 2}
    assert stats.issues == [] and stats.engine == "azure"
    assert sink.intervals == []


def test_portal_csv_local_time_needs_a_zone(tmp_path: Path) -> None:
    # en-GB display language, the portal's display zone "Local": 10:05:33 in Berlin (CET, +1) is 09:05:33Z;
    # 15 July 11:00 (CEST, +2) is 09:00Z on day 195 of 2026.
    text = BOM + ('"TimeGenerated [Local Time]",Computer,EventID,TargetUserName,LogonType\r\n'
                  '"14/01/2026, 10:05:33.123",RDSH01.contoso.local,4624,alice,10\r\n'
                  '"15/07/2026, 11:00:00.000",RDSH01.contoso.local,4624,bob,10\r\n')
    path = write(tmp_path, "local.csv", text)
    with pytest.raises(SourceError, match="--input-tz"):
        read_all(path)
    events, stats, _ = read_all(path, read_plan(local_zone=ZoneInfo("Europe/Berlin")))
    assert [e.time_us for e in events] == [JAN14_0905 + 123_000,
                                           1_767_225_600_000_000 + 195 * DAY + 9 * HOUR]
    assert stats.issues == []


def test_portal_csv_local_time_that_does_not_exist(tmp_path: Path) -> None:
    # Berlin skipped 02:00-03:00 on 29 March 2026 (day 87): 02:30 is read with the offset before the change
    # (+1), i.e. 01:30Z, and said.
    text = BOM + ('"TimeGenerated [Local Time]",Computer,EventID,TargetUserName,LogonType\r\n'
                  '"29/03/2026, 02:30:00.000",RDSH01.contoso.local,4624,alice,10\r\n')
    events, stats, _ = read_all(write(tmp_path, "dst.csv", text), read_plan(local_zone=ZoneInfo("Europe/Berlin")))
    assert [e.time_us for e in events] == [1_767_225_600_000_000 + 87 * DAY + 90 * 60_000_000]
    assert len(stats.issues) == 1 and "does not exist in Europe/Berlin" in stats.issues[0].reason
    assert stats.issues[0].skipped == 0 and stats.issues[0].where == "line 2"


AMBIGUOUS = BOM + ('"TimeGenerated [UTC]",Computer,EventID,TargetUserName,LogonType\r\n'
                   '"1/2/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,10\r\n'
                   '"3/4/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,10\r\n')


def test_day_month_order_from_the_data_or_the_culture(tmp_path: Path) -> None:
    # Every date could be either order: no culture -> refused, naming --culture
    path = write(tmp_path, "ambiguous.csv", AMBIGUOUS)
    with pytest.raises(SourceError, match="--culture") as caught:
        read_all(path)
    assert "'1/2/2026, 9:05:33.000 AM'" in str(caught.value)
    # en-GB: 1 February (day 31); en-US: 2 January (day 1)
    gb, _, _ = read_all(path, read_plan(culture="en-GB"))
    us, _, _ = read_all(path, read_plan(culture="en-US"))
    assert gb[0].time_us == 1_767_225_600_000_000 + 31 * DAY + (9 * 3600 + 5 * 60 + 33) * 1_000_000
    assert us[0].time_us == 1_767_225_600_000_000 + 1 * DAY + (9 * 3600 + 5 * 60 + 33) * 1_000_000
    # one value with a day above 12 decides day-first for the whole file, whatever the culture says
    decided = AMBIGUOUS + '"14/01/2026, 09:05:33.000",RDSH01.contoso.local,4624,alice,10\r\n'
    events, _, _ = read_all(write(tmp_path, "decided.csv", decided), read_plan(culture="en-US"))
    assert [e.time_us for e in events] == [
        1_767_225_600_000_000 + 31 * DAY + (9 * 3600 + 5 * 60 + 33) * 1_000_000,  # 1/2 -> 1 February
        1_767_225_600_000_000 + (31 + 28 + 31 + 2) * DAY + (9 * 3600 + 5 * 60 + 33) * 1_000_000,  # 3/4 -> 3 April
        JAN14_0905,
    ]
    # a file in both orders is refused
    mixed = decided + '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,10\r\n'
    with pytest.raises(SourceError, match="both day/month orders"):
        read_all(write(tmp_path, "mixed.csv", mixed))


def test_name_error_from_an_excel_resave(tmp_path: Path) -> None:
    # Excel turned "-\-" (Account) and "-" (IpAddress) into #NAME?, and one row's TargetUserName too.
    text = ('"TimeGenerated [UTC]",Computer,EventID,Account,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
            '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,#NAME?,alice,CONTOSO,10,"10.1.2.3"\r\n'
            '"1/14/2026, 9:06:00.000 AM",RDSH01.contoso.local,4624,x,#NAME?,CONTOSO,10,"10.1.2.3"\r\n'
            '"1/14/2026, 9:07:00.000 AM",RDSH01.contoso.local,4624,x,carol,CONTOSO,7,#NAME?\r\n')
    events, stats, _ = read_all(write(tmp_path, "resaved.csv", text))
    assert [e.data["TargetUserName"] for e in events] == ["alice"]
    assert [(i.where, i.skipped) for i in stats.issues] == [("line 2", 0), ("line 3", 1), ("line 4", 1)]
    assert "#NAME? in column Account" in stats.issues[0].reason and "value ignored" in stats.issues[0].reason
    assert "column TargetUserName" in stats.issues[1].reason and "row skipped" in stats.issues[1].reason
    assert "column IpAddress" in stats.issues[2].reason
    assert stats.records == 1


# --- az CLI JSON ------------------------------------------------------------------------------------------------

#: `az monitor log-analytics query -w ID --analytics-query "SecurityEvent | ..." -o json`: keys sorted, every value
#: str(value): numbers as text, null as "None".
AZ_SECURITY = """[
  {
    "Computer": "RDSH02.contoso.local",
    "EventID": "4624",
    "IpAddress": "None",
    "LogonType": "10",
    "TableName": "PrimaryResult",
    "TargetDomainName": "CONTOSO",
    "TargetUserName": "dave",
    "TargetUserSid": "S-1-5-21-1111-2222-3333-1107",
    "TimeGenerated": "2026-01-14T09:05:33.123Z"
  },
  {
    "Computer": "RDSH02.contoso.local",
    "EventID": "4634",
    "IpAddress": "None",
    "LogonType": "10",
    "TableName": "PrimaryResult",
    "TargetDomainName": "CONTOSO",
    "TargetUserName": "dave",
    "TargetUserSid": "S-1-5-21-1111-2222-3333-1107",
    "TimeGenerated": "2026-01-14T17:05:33.1234567Z"
  }
]
"""


def test_az_json_strings_and_none(tmp_path: Path) -> None:
    path = write(tmp_path, "security.json", AZ_SECURITY)
    assert looks(path)
    events, stats, _ = read_all(path)
    assert [(e.event_id, e.computer, e.time_us) for e in events] == [
        (4624, "RDSH02.contoso.local", JAN14_0905 + 123_000),
        (4634, "RDSH02.contoso.local", JAN14_0905 + 8 * HOUR + 123_456),
    ]
    assert events[0].data == {"LogonType": "10", "TargetDomainName": "CONTOSO", "TargetUserName": "dave",
                              "TargetUserSid": "S-1-5-21-1111-2222-3333-1107"}  # "None" is no value
    assert stats.issues == []


#: WindowsEvent through az: EventData (dynamic) as its JSON text, EventRecordId a string column.
AZ_WINDOWS_EVENT = """[
  {
    "Channel": "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
    "Computer": "RDSH03.contoso.local",
    "EventData": "{\\"User\\":\\"CONTOSO\\\\\\\\erin\\",\\"SessionID\\":\\"3\\",\\"Address\\":\\"10.1.2.9\\"}",
    "EventID": "21",
    "EventRecordId": "7781",
    "Provider": "Microsoft-Windows-TerminalServices-LocalSessionManager",
    "RawEventData": "None",
    "TableName": "PrimaryResult",
    "TimeGenerated": "2026-01-14T09:05:33Z"
  }
]
"""


def test_az_json_windows_event(tmp_path: Path) -> None:
    events, stats, _ = read_all(write(tmp_path, "lsm.json", AZ_WINDOWS_EVENT))
    assert [(e.channel, e.event_id, e.record_id, e.computer, e.time_us, e.provider) for e in events] == [
        (LSM, 21, 7781, "RDSH03.contoso.local", JAN14_0905,
         "Microsoft-Windows-TerminalServices-LocalSessionManager")]
    assert events[0].data == {"User": "CONTOSO\\erin", "SessionID": "3", "Address": "10.1.2.9"}
    assert stats.issues == []


# --- Query API JSON ---------------------------------------------------------------------------------------------

EVENT_DATA_21 = ('<DataItem type="System.XmlData" time="2026-01-14T09:05:33.0000000+00:00" sourceHealthServiceId='
                 '"7896DB24-81DF-2EAB-B12B-29AED6D69A17"><UserData><EventXML xmlns="Event_NS"><User>CONTOSO\\frank'
                 "</User><SessionID>4</SessionID><Address>10.1.2.10</Address></EventXML></UserData></DataItem>")
EVENT_DATA_302 = ('<DataItem type="System.XmlData" time="2026-01-14T10:05:33.0000000+00:00" sourceHealthServiceId='
                  '"7896DB24-81DF-2EAB-B12B-29AED6D69A17"><UserData><EventInfo xmlns="aag"><Username>CONTOSO\\grace'
                  "</Username><IpAddress>203.0.113.7</IpAddress><AuthType>NTLM</AuthType><Resource>"
                  "rdsh01.contoso.local</Resource><ConnectionProtocol>HTTP</ConnectionProtocol><ErrorCode>0"
                  "</ErrorCode></EventInfo></UserData></DataItem>")


def api(columns: list[tuple[str, str]], rows: list[list[Any]]) -> str:
    import json

    return json.dumps({"tables": [{"name": "PrimaryResult",
                                   "columns": [{"name": n, "type": t} for n, t in columns], "rows": rows}]})


def test_api_json_event_table(tmp_path: Path) -> None:
    text = api([("TimeGenerated", "datetime"), ("Computer", "string"), ("EventLog", "string"),
                ("Source", "string"), ("EventID", "int"), ("EventData", "string")],
               [["2026-01-14T09:05:33Z", "RDSH01.contoso.local", LSM,
                 "Microsoft-Windows-TerminalServices-LocalSessionManager", 21, EVENT_DATA_21],
                ["2026-01-14T10:05:33Z", "RDGW01.contoso.local", GATEWAY,
                 "Microsoft-Windows-TerminalServices-Gateway", 302, EVENT_DATA_302]])
    path = write(tmp_path, "event.json", text)
    assert looks(path)
    events, stats, _ = read_all(path)
    assert [(e.channel, e.event_id, e.computer, e.time_us, e.record_id) for e in events] == [
        (LSM, 21, "RDSH01.contoso.local", JAN14_0905, None),
        (GATEWAY, 302, "RDGW01.contoso.local", JAN14_0905 + HOUR, None),
    ]
    assert events[0].data == {"User": "CONTOSO\\frank", "SessionID": "4", "Address": "10.1.2.10"}
    assert events[1].data == {"Username": "CONTOSO\\grace", "IpAddress": "203.0.113.7", "AuthType": "NTLM",
                              "Resource": "rdsh01.contoso.local", "ConnectionProtocol": "HTTP", "ErrorCode": "0"}
    assert events[1].provider == "Microsoft-Windows-TerminalServices-Gateway"
    assert stats.issues == [] and stats.records == 2


def test_api_json_windows_event_typed_and_raw_fallback(tmp_path: Path) -> None:
    raw = xml_event(21, channel=LSM, computer="RDSH04.contoso.local",
                    user_data={"User": "CONTOSO\\heidi", "SessionID": "2", "Address": "10.1.2.11"})
    columns = [("TimeGenerated", "datetime"), ("Computer", "string"), ("Channel", "string"), ("Provider", "string"),
               ("EventID", "int"), ("EventRecordId", "string"), ("EventData", "dynamic"),
               ("RawEventData", "string")]
    text = api(columns, [
        # typed: EventData an object, SessionID a number
        ["2026-01-14T09:05:33Z", "RDSH04.contoso.local", LSM, "Microsoft-Windows-TerminalServices-LocalSessionManager",
         25, "900", {"User": "CONTOSO\\ivan", "SessionID": 5, "Address": "10.1.2.12"}, None],
        # the agent could not parse it: EventData null, the XML in RawEventData
        ["2026-01-14T09:05:34Z", "RDSH04.contoso.local", LSM, None, 21, "901", None, raw],
        # neither: said, skipped
        ["2026-01-14T09:05:35Z", "RDSH04.contoso.local", LSM, None, 24, "902", None, None],
    ])
    events, stats, _ = read_all(write(tmp_path, "windowsevent.json", text))
    assert [(e.event_id, e.record_id, e.time_us, e.provider) for e in events] == [
        (25, 900, JAN14_0905, "Microsoft-Windows-TerminalServices-LocalSessionManager"),
        (21, 901, JAN14_0905 + 1_000_000, "Microsoft-Windows-TerminalServices-LocalSessionManager"),
    ]
    assert events[0].data == {"User": "CONTOSO\\ivan", "SessionID": "5", "Address": "10.1.2.12"}
    assert events[1].data == {"User": "CONTOSO\\heidi", "SessionID": "2", "Address": "10.1.2.11"}
    assert [(i.where, i.skipped) for i in stats.issues] == [("row 3", 1)]
    assert "event 24 without its payload" in stats.issues[0].reason


# --- WVDConnections ---------------------------------------------------------------------------------------------

WVD_COLUMNS = [("TimeGenerated", "datetime"), ("UserName", "string"), ("SessionHostName", "string"),
               ("State", "string"), ("CorrelationId", "string"), ("ClientSideIPAddress", "string"),
               ("ClientOS", "string"), ("ClientType", "string"), ("ConnectionType", "string")]


def test_wvd_connected_is_evidence_started_only_is_not(tmp_path: Path) -> None:
    host = "avd-0.contoso.local"
    one = "0b8d2c5e-0000-4000-8000-000000000001"
    never = "0b8d2c5e-0000-4000-8000-000000000002"
    text = api(WVD_COLUMNS, [
        ["2026-01-14T09:05:20Z", "judy@contoso.com", host, "Started", one, "198.51.100.4", "Windows 11",
         "com.microsoft.rdc.windows.msrdc.x64", "Desktop"],
        ["2026-01-14T09:05:33Z", "judy@contoso.com", host, "Connected", one, "198.51.100.4", "Windows 11",
         "com.microsoft.rdc.windows.msrdc.x64", "Desktop"],
        ["2026-01-14T11:05:33Z", "judy@contoso.com", host, "Completed", one, "198.51.100.4", "Windows 11",
         "com.microsoft.rdc.windows.msrdc.x64", "Desktop"],
        # a connection that never reached Connected: no evidence
        ["2026-01-14T12:00:00Z", "mallory@contoso.com", host, "Started", never, "198.51.100.9", "Android",
         "com.microsoft.rdc.android", "RAIL"],
    ])
    path = write(tmp_path, "wvd.json", text)
    assert looks(path)
    events, stats, sink = read_all(path)
    assert [(e.channel, e.event_id, e.computer, e.time_us, e.record_id) for e in events] == [
        (azure.WVD_CHANNEL, azure.WVD_CONNECTED, host, JAN14_0905, None),
        (azure.WVD_CHANNEL, azure.WVD_COMPLETED, host, JAN14_0905 + 2 * HOUR, None),
    ]
    assert events[0].data == {"UserName": "judy@contoso.com", "ClientSideIPAddress": "198.51.100.4",
                              "CorrelationId": one, "ClientOS": "Windows 11",
                              "ClientType": "com.microsoft.rdc.windows.msrdc.x64", "ConnectionType": "Desktop",
                              "State": "Connected"}
    assert "mallory@contoso.com" not in {e.data["UserName"] for e in events}
    assert stats.records == 4 and stats.issues == [] and sink.intervals == []


# --- Coverage ---------------------------------------------------------------------------------------------------

#: The hourly coverage query's result (docs/azure.md), portal CSV: Records counts all events of the table.
PORTAL_COVERAGE = BOM + ('Computer,Channel,"TimeGenerated [UTC]",Records\r\n'
                         'RDSH01.contoso.local,Security,"1/14/2026, 9:00:00.000 AM",12\r\n'
                         'RDSH01.contoso.local,Security,"1/14/2026, 10:00:00.000 AM",0\r\n'
                         '"avd-0.contoso.local",WVDConnections,"1/14/2026, 10:00:00.000 AM",0\r\n'
                         'RDSH01.contoso.local,Security,"1/14/2026, 11:30:00.000 AM",3\r\n')


def test_coverage_intervals_from_the_hourly_export(tmp_path: Path) -> None:
    path = write(tmp_path, "coverage.csv", PORTAL_COVERAGE)
    assert looks(path)
    events, stats, sink = read_all(path)
    nine = JAN14_0905 - (5 * 60 + 33) * 1_000_000
    assert events == []
    assert sink.intervals == [
        ("RDSH01.contoso.local", "Security", nine, nine + HOUR),  # 12 events
        # 10:00 Security with 0 events covers nothing; the WVD series' 0 does (the service logs every connection)
        ("avd-0.contoso.local", azure.WVD_CHANNEL, nine + HOUR, nine + 2 * HOUR),
    ]
    assert [(i.where, i.skipped) for i in stats.issues] == [("line 5", 1)]
    assert "does not start an hour" in stats.issues[0].reason
    assert stats.records == 3


def test_coverage_export_in_az_json(tmp_path: Path) -> None:
    text = """[
  {
    "Channel": "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
    "Computer": "RDSH01.contoso.local",
    "Records": "4",
    "TableName": "PrimaryResult",
    "TimeGenerated": "2026-01-14T09:00:00Z"
  }
]
"""
    events, _, sink = read_all(write(tmp_path, "coverage.json", text))
    nine = JAN14_0905 - (5 * 60 + 33) * 1_000_000
    assert events == [] and sink.intervals == [("RDSH01.contoso.local", LSM, nine, nine + HOUR)]


# --- Detection and refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    xml_event(4624, data={"TargetUserName": "alice"}),
    '<?xml version="1.0" encoding="utf-8"?>\r\n<Events>' + xml_event(21, user_data={"User": "x"}) + "</Events>",
    # Get-RDUserSession | Export-Csv (Windows PowerShell 5.1)
    '#TYPE Microsoft.RemoteDesktopServices.Management.RDUserSession\r\n"ServerName","SessionId","UserName",'
    '"DomainName","ServerIPAddress","TSProtocol","ApplicationType","ResolutionWidth","ResolutionHeight",'
    '"ColorDepth","CreateTime","DisconnectTime","SessionState","CollectionName","CollectionType",'
    '"UnifiedSessionId","HostServer","IdleTime","RemoteFxEnabled"\r\n',
    '"ServerName","SessionId","UserName","DomainName","CreateTime","SessionState","HostServer"\r\n',
    "name,age,city\r\nbob,3,Paris\r\n",
    '"TimeGenerated [UTC]",Computer,CounterName,CounterValue\r\n"1/14/2026, 9:00:00.000 AM",a,b,1\r\n',
    '[\n  {\n    "Computer": "a",\n    "EventID": "4624",\n    "TimeGenerated": "2026-01-14T09:05:33Z"\n  }\n]\n',
    '{"value": [1, 2]}',
    "",
])
def test_looks_like_refuses_other_files(tmp_path: Path, text: str) -> None:
    assert not looks(write(tmp_path, "other.txt", text))


def test_looks_like_reads_content_not_names(tmp_path: Path) -> None:
    assert looks(write(tmp_path, "export.txt", PORTAL_SECURITY))
    assert looks(write(tmp_path, "security.csv.bak", AZ_SECURITY))
    assert looks(write(tmp_path, "utf16.csv", PORTAL_COVERAGE, encoding="utf-16"))


def test_missing_columns_name_the_query(tmp_path: Path) -> None:
    text = api([c for c in WVD_COLUMNS if c[0] != "CorrelationId"],
               [["2026-01-14T09:05:33Z", "judy@contoso.com", "avd-0", "Connected", "1", "Windows", "x", "Desktop"]])
    with pytest.raises(SourceError, match=r"without the column CorrelationId: run the query of docs/azure\.md"):
        read_all(write(tmp_path, "wvd.json", text))


# --- evtrack.synth.azure: what it writes reads back ------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
T0 = datetime(2026, 1, 14, 9, 5, 33, 123_000, tzinfo=timezone.utc)
ALICE = synth.AzureUser("alice", "CONTOSO", "S-1-5-21-1111-2222-3333-1104", "alice@contoso.com")
BOB = synth.AzureUser("bob", "CONTOSO", "S-1-5-21-1111-2222-3333-1105", "bob@contoso.com")
CAROL = synth.AzureUser("carol", "CONTOSO", "S-1-5-21-1111-2222-3333-1106", "carol@contoso.com")
SESSIONS = [
    synth.AzureSession(ALICE, "RDSH01.contoso.local", T0, T0 + timedelta(hours=2), client_ip="10.1.2.3",
                       disconnects=((T0 + timedelta(minutes=30), T0 + timedelta(minutes=40)),),
                       gateway="RDGW01.contoso.local"),
    synth.AzureSession(BOB, "avd-0.contoso.local", T0 + timedelta(hours=1), T0 + timedelta(hours=3), wvd=True,
                       client_ip="198.51.100.4"),
    synth.AzureSession(CAROL, "avd-0.contoso.local", T0 + timedelta(hours=2), None, wvd=True, connected=False),
]
SHAPES = {
    "portal-en-US": (lambda t: synth.portal_csv(t, "en-US"), read_plan()),
    "portal-en-GB": (lambda t: synth.portal_csv(t, "en-GB"), read_plan()),
    "portal-local": (lambda t: synth.portal_csv(t, "en-GB", zone="Europe/Berlin"),
                     read_plan(local_zone=ZoneInfo("Europe/Berlin"))),
    "az": (lambda t: synth.az_json(t).encode(), read_plan()),
    "api": (lambda t: synth.api_json(t).encode(), read_plan()),
}


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _write_shape(tmp_path: Path, shape: str, table: synth.Table) -> tuple[Path, ReadPlan]:
    writer, plan = SHAPES[shape]
    path = tmp_path / f"{table.name}-{shape}.out"
    path.write_bytes(writer(table))
    assert looks(path)
    return path, plan


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["SecurityEvent", "Event", "WindowsEvent"])
def test_synth_windows_tables_read_back(tmp_path: Path, shape: str, name: str) -> None:
    table = {"SecurityEvent": synth.security_event_table, "Event": synth.event_table,
             "WindowsEvent": lambda s: synth.windows_event_table(s, unparsed=(1,))}[name](SESSIONS)
    events, stats, sink = read_all(*_write_shape(tmp_path, shape, table))
    wanted = [e for e in synth.windows_events(SESSIONS) if (e.channel == "Security") == (name == "SecurityEvent")]
    assert [(e.time_us, e.event_id, e.computer, e.channel, e.provider) for e in events] == [
        (_us(e.time), e.event_id, e.computer, e.channel, e.provider) for e in wanted]
    for read_back, model in zip(events, wanted, strict=True):
        assert dict(model.data).items() <= read_back.data.items()
    assert stats.issues == [] and sink.intervals == []
    if name == "WindowsEvent":
        assert [e.record_id for e in events[:3]] == [1001, 1001, 1002]  # per computer and channel


@pytest.mark.parametrize("shape", SHAPES)
def test_synth_wvd_reads_back(tmp_path: Path, shape: str) -> None:
    events, stats, _ = read_all(*_write_shape(tmp_path, shape, synth.wvd_table(SESSIONS)))
    host = "avd-0.contoso.local"
    assert [(e.event_id, e.computer, e.time_us, e.data["UserName"]) for e in events] == [
        (azure.WVD_CONNECTED, host, _us(T0 + timedelta(hours=1, seconds=-5)), "bob@contoso.com"),
        (azure.WVD_COMPLETED, host, _us(T0 + timedelta(hours=3, seconds=5)), "bob@contoso.com"),
    ]
    assert stats.records == 4  # bob's Started, Connected, Completed and carol's Started
    assert {e.data["UserName"] for e in events if e.event_id == azure.WVD_CONNECTED} == synth.expected_users(
        SESSIONS, "WVDConnections")


@pytest.mark.parametrize("shape", SHAPES)
def test_synth_coverage_reads_back(tmp_path: Path, shape: str) -> None:
    start = datetime(2026, 1, 14, 8, tzinfo=timezone.utc)
    table = synth.coverage_table(SESSIONS, start, start + timedelta(hours=6))
    events, stats, sink = read_all(*_write_shape(tmp_path, shape, table))
    eight = _us(start)

    def hours(computer: str, channel: str, which: Iterable[int]) -> list[tuple[str, str, int, int]]:
        return [(computer, channel, eight + h * HOUR, eight + (h + 1) * HOUR) for h in which]

    # Security: one background record every hour for each host seen in it; LSM and the gateway only in the hours
    # of their events (alice 9:05-11:05 on RDSH01 via RDGW01, bob 10:05-12:05 on avd-0); WVD: the whole series
    expected = (hours("RDSH01.contoso.local", "Security", range(6)) + hours("avd-0.contoso.local", "Security", range(6))
                + hours("RDSH01.contoso.local", LSM, (1, 3)) + hours("avd-0.contoso.local", LSM, (2, 4))
                + hours("RDGW01.contoso.local", GATEWAY, (1, 3))
                + hours("avd-0.contoso.local", azure.WVD_CHANNEL, range(6)))
    assert sorted(sink.intervals) == sorted(expected)
    assert events == [] and stats.issues == []


def test_synth_expected_users_match_what_the_reader_sees(tmp_path: Path) -> None:
    events, _, _ = read_all(*_write_shape(tmp_path, "az", synth.security_event_table(SESSIONS, event_data=False)))
    rdp = {f"{e.data['TargetDomainName']}\\{e.data['TargetUserName']}".lower()
           for e in events if e.event_id == 4624 and e.data.get("LogonType") in ("10", "12")}
    assert rdp == synth.expected_users(SESSIONS, "SecurityEvent") == {"contoso\\alice", "contoso\\bob"}


def test_synth_portal_csv_shape() -> None:
    text = synth.portal_csv(synth.wvd_table(SESSIONS[1:2]), "en-US").decode("utf-8")
    lines = text.split("\r\n")
    assert lines[0] == ("\ufeff\"TimeGenerated [UTC]\",UserName,SessionHostName,State,CorrelationId,"
                        "ClientSideIPAddress,ClientOS,ClientType,ClientVersion,ConnectionType")
    assert lines[1].startswith('"1/14/2026, 10:05:18.123 AM","bob@contoso.com","avd-0.contoso.local",Started,"')
    gb = synth.portal_csv(synth.wvd_table(SESSIONS[1:2]), "en-GB").decode("utf-8").split("\r\n")
    assert gb[1].startswith('"14/01/2026, 10:05:18.123",')
    az = synth.az_json(synth.security_event_table(SESSIONS[:1], event_data=False))
    assert '"EventData": "None"' in az and '"EventID": "4624"' in az and '"TableName": "PrimaryResult"' in az


# --- Smaller shapes ---------------------------------------------------------------------------------------------


def test_a_date_that_reads_the_same_either_way_needs_no_culture(tmp_path: Path) -> None:
    text = BOM + ('"TimeGenerated [UTC]",Computer,EventID,TargetUserName,LogonType\r\n'
                  '"1/1/2026, 12:00:00.000 AM",RDSH01.contoso.local,4624,alice,10\r\n')
    events, stats, _ = read_all(write(tmp_path, "newyear.csv", text))
    assert [e.time_us for e in events] == [1_767_225_600_000_000] and stats.issues == []  # 12 AM is midnight


def test_windows_event_payload_shapes() -> None:
    # flat, nested under the UserData element, and Data elements turned into JSON objects
    assert azure.json_payload({"User": "CONTOSO\\a", "SessionID": 3}) == {"User": "CONTOSO\\a", "SessionID": "3"}
    assert azure.json_payload({"UserData": {"EventXML": {"@xmlns": "Event_NS", "User": "CONTOSO\\a"}}}) == {
        "User": "CONTOSO\\a"}
    assert azure.json_payload({"Data": [{"@Name": "TargetUserName", "#text": "a"},
                                        {"@Name": "LogonType", "#text": "10"}]}) == {
        "TargetUserName": "a", "LogonType": "10"}
    # the az CLI writes str() of an object the API returned parsed: Python's form
    assert azure.payload({"EventData": "{'User': 'CONTOSO\\\\a', 'SessionID': '3'}"}) == (
        {"User": "CONTOSO\\a", "SessionID": "3"}, None)


def test_security_event_log_clear_and_excel_semicolons(tmp_path: Path) -> None:
    # 1102's payload is UserData/LogFileCleared; its provider is the Eventlog one. Excel re-saved the file with
    # a European list separator (;) and without the BOM.
    text = ('TimeGenerated [UTC];Computer;EventID;EventData\r\n'
            '14/01/2026 09:05;RDSH01.contoso.local;1102;"<UserData><LogFileCleared xmlns=""http://manifests.'
            'microsoft.com/win/2004/08/windows/eventlog""><SubjectUserSid>S-1-5-21-1-2-3-500</SubjectUserSid>'
            '<SubjectUserName>admin</SubjectUserName></LogFileCleared></UserData>"\r\n')
    path = write(tmp_path, "clear.csv", text)
    assert looks(path)
    events, stats, _ = read_all(path)
    assert [(e.event_id, e.provider, e.channel, e.time_us) for e in events] == [
        (1102, "Microsoft-Windows-Eventlog", "Security", JAN14_0905 - 33_000_000)]
    assert events[0].data == {"SubjectUserSid": "S-1-5-21-1-2-3-500", "SubjectUserName": "admin"}
    assert stats.issues == []
