"""Records as columns (:func:`evtrack.events.normalise_batch`) give the rows one record at a time gives
(:func:`evtrack.events.normalise_row`), row for row, in order: the fast reader's evidence takes the first way, every
other reader's the second, and reports must not tell them apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtrack.catalogue import CATALOGUE, read_plan
from evtrack.events import BatchBuilder, normalise_batch, normalise_row
from evtrack.sources.base import RawBatch, RawEvent

#: The channel names as logs write them (the catalogue's keys are lower case), and one evtrack does not read.
CHANNELS = ("Security", "System", "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
            "microsoft-windows-terminalservices-remoteconnectionmanager/operational",
            "Microsoft-Windows-TerminalServices-Gateway/Operational", "Application")
EVENT_IDS = sorted({d.event_id for d in CATALOGUE} | {1, 4625, 65536 + 21, 2**40})
KEYS = sorted({key for d in CATALOGUE for key in d.fields.payload_keys()})
#: Payload texts where a rule could go wrong: blanks, padding, hex, digits Python's int() reads but look odd,
#: out-of-range logon types, qualified and bare names, addresses local and remote, yes/no tokens.
TEXTS = (None, "", " ", " x ", "10", " 10 ", "7", "3", "0x1F", "0XaB", "1_0", "\u0663", "-129", "127", "-",
         "%%1842", "%%1843", "YES", "no", "CONTOSO\\alice", "contoso\\\\bob", "\\x", "a\\", "alice",
         "10.0.0.1", "127.0.0.1", "::1", "fe80::1", "LOCAL", "RDP-Tcp#3", "Console", "0", "5", "S-1-5-21-1-2-3-1001",
         "18446744073709551615", "-9223372036854775808")

events = st.builds(
    RawEvent,
    time_us=st.one_of(st.none(), st.integers(0, 2**53)),
    event_id=st.sampled_from(EVENT_IDS),
    record_id=st.one_of(st.none(), st.integers(0, 2**62)),
    channel=st.sampled_from(CHANNELS),
    computer=st.sampled_from(("RDSH01.contoso.local", "rdsh02", "")),
    provider=st.sampled_from(("Microsoft-Windows-Security-Auditing", "")),
    data=st.dictionaries(st.sampled_from(KEYS), st.sampled_from(TEXTS), max_size=8),
)


def one_at_a_time(records: list[RawEvent], source: str) -> list[dict[str, object]]:
    builder = BatchBuilder()
    for record in records:
        row = normalise_row(record, source)
        if row is not None:
            builder.add_row(row)
    return builder.flush().to_pylist()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, max_size=40))
def test_a_batch_gives_the_rows_of_its_records_one_by_one(records: list[RawEvent]) -> None:
    assert normalise_batch(RawBatch.of(records), "a.evtx").to_pylist() == one_at_a_time(records, "a.evtx")


def test_every_catalogue_entry_with_every_field_filled() -> None:
    """Each entry once with its fields all set (and once with them blank), in a batch that mixes entries: the
    rows come back in the records' order."""
    records = []
    for index, definition in enumerate(CATALOGUE):
        for value in ("CONTOSO\\carol", " 10 "):
            data = {key: value for key in definition.fields.payload_keys()}
            records.append(RawEvent(1_700_000_000_000_000 + index, definition.event_id, index, definition.channel,
                                    "RDSH01", "provider", data))
    rows = normalise_batch(RawBatch.of(records), "x").to_pylist()
    assert rows == one_at_a_time(records, "x")
    assert len(rows) == 2 * sum(1 for d in CATALOGUE if d.kind is not None)
    assert [row["record_id"] for row in rows] == sorted(row["record_id"] for row in rows)


# -- the fast reader's columns equal its one-by-one decoding ---------------------------------------------------------

JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["CONTOSO\\alice", 'say "hi"', "é\u00a0ü", "\\\\", "0x1F"]),
    st.fixed_dictionaries({"#text": st.text(max_size=4)}), st.lists(st.text(max_size=3), max_size=2),
)
PAYLOAD_KEYS = ("User", "SessionID", "Address", "LogonType", "Unread")
PLAN_KEYS = frozenset(PAYLOAD_KEYS[:4])
payloads = st.lists(st.dictionaries(st.sampled_from(PAYLOAD_KEYS), JSON_VALUES, max_size=5), min_size=1, max_size=12)


def _compact(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # as pyevtx-rs writes (indent=False)


@settings(max_examples=300, deadline=None)
@given(payloads, st.booleans())
def test_payload_columns_give_what_decoding_each_payload_gives(objects: list[dict[str, object]],
                                                               user_data: bool) -> None:
    """Whenever Arrow's reader takes a group of payloads as columns, each value is the text decoding that
    payload alone gives; when it cannot (a float, an object, a list, a type that varies), it says so (None) and
    the reader decodes them one by one."""
    from evtrack.sources.pyevtx_rs import _decoded_payload, _payload_columns

    if user_data:
        objects = [{"#attributes": {"xmlns": "Event_NS"}, "EventXML": o} for o in objects]
    texts = [_compact(o) for o in objects]
    columns = _payload_columns(texts, user_data, PLAN_KEYS)
    if columns is None:
        return
    for index, text in enumerate(texts):
        one = _decoded_payload(text, 0, user_data, PLAN_KEYS)
        assert {key: column[index].as_py() for key, column in columns.items()} == \
            {key: one.get(key) for key in columns}
        assert all(one.get(key) is None for key in PLAN_KEYS - columns.keys())


def test_payload_columns_refuse_what_is_not_text_numbers_or_booleans() -> None:
    from evtrack.sources.pyevtx_rs import _payload_columns

    columns = _payload_columns(['{"User":"a","SessionID":2,"Unread":1.5}', '{"User":"b","SessionID":3}'], False,
                               PLAN_KEYS)
    assert columns is not None
    assert {key: column.to_pylist() for key, column in columns.items()} == {"User": ["a", "b"],
                                                                          "SessionID": ["2", "3"]}
    assert _payload_columns(['{"User":"a"}', '{"User":2}'], False, PLAN_KEYS) is None  # the type varies
    assert _payload_columns(['{"User":1.5}'], False, PLAN_KEYS) is None  # a float
    assert _payload_columns(['{"User":{"#text":"a"}}'], False, PLAN_KEYS) is None  # an object
    assert _payload_columns(['{"User":"a"},"RenderingInfo":{}'], False, PLAN_KEYS) is None  # not one object
    assert _payload_columns(['{"A":{"User":"a"},"B":{"User":"b"}}'], True, PLAN_KEYS) is None  # two elements


TIME_TEXTS = st.one_of(
    st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    st.text(alphabet="0123456789-T:.Z ", min_size=20, max_size=28),
    st.sampled_from(["2024-02-30T00:00:00.000000Z", "2024-01-01T24:00:00.000000Z", "2024-01-01T00:00:60.000000Z",
                     "0000-01-01T00:00:00.000000Z", "2024-01-01T00:00:00.0000000Z", "2024-01-01 00:00:00.000000Z"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TIME_TEXTS, min_size=1, max_size=6))
def test_times_converted_together_equal_parse_system_time(texts: list[str]) -> None:
    from evtrack.sources.pyevtx_rs import _times
    from evtrack.sources.xmlfile import parse_system_time

    assert _times(texts).to_pylist() == [parse_system_time(text) for text in texts]


# -- review findings (a cold review of the columnar read, hand-made records) ----------------------------------------

LSM_24 = ('{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},"System":{'
          '"Provider":{"#attributes":{"Name":"Microsoft-Windows-TerminalServices-LocalSessionManager","Guid":'
          '"5D896912-022D-40AA-A3A8-4FA5515C76D7"}},"EventID":24,"Version":0,"Level":4,"Task":0,"Opcode":0,'
          '"Keywords":"0x1000000000000000","TimeCreated":{"#attributes":{"SystemTime":"2024-03-01T08:30:06.994805Z"'
          '}},"EventRecordID":3,"Correlation":null,"Execution":{"#attributes":{"ProcessID":740,"ThreadID":1844}},'
          '"Channel":"Microsoft-Windows-TerminalServices-LocalSessionManager/Operational","Computer":"RDSH01",'
          '"Security":{"#attributes":{"UserID":"S-1-5-18"}}},"UserData":{"EventXML":{"#attributes":{"xmlns":'
          '"Event_NS"},"User":"CONTOSO\\\\alice","SessionID":2,"Address":"10.0.0.7"}}}}')


def _odd(system_event_id: int) -> str:
    """A Security record whose Provider carries an attribute EventID 21 before its real System/EventID (so the
    loop's text search reads 21, a wanted id) and whose name holds a backslash (so it is decoded in full, its
    event id the JSON's), with an LSM 21's payload."""
    return (LSM_24.replace('"Name":"Microsoft-Windows-TerminalServices-LocalSessionManager","Guid"',
                           '"Name":"Odd\\\\Provider","EventID":21,"Guid"')
            .replace('"EventID":24,', f'"EventID":{system_event_id},')
            .replace('"EventRecordID":3,', '"EventRecordID":2,')
            .replace('"Channel":"Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",'
                     '"Computer":"RDSH01"', '"Channel":"Security","Computer":"ODD"')
            .replace("alice", "mallory").replace("10.0.0.7", "203.0.113.9"))


@pytest.mark.parametrize("system_event_id", [65536 + 21, 2**64 - 1])
@pytest.mark.parametrize("with_lsm", [True, False])
def test_an_event_id_beyond_16_bits_from_a_record_decoded_in_full_makes_no_row(system_event_id: int,
                                                                               with_lsm: bool) -> None:
    """Review finding: such a record reached normalise_batch, whose (channel << 16 | event id) grouping read
    65557 of Security as event 21 of the next channel: an LSM logon for a user who was never there (or an
    IndexError with no next channel; an OverflowError for 2**64 - 1). It is an out-of-range record, said and
    skipped, as the general path and python-evtx treat one; the record after it is read as ever."""
    from evtrack.coverage import CoverageBuilder
    from evtrack.sources.base import FileStats, one_by_one
    from evtrack.sources.pyevtx_rs import _OUT_OF_RANGE, _fast

    texts = [_odd(system_event_id), *([LSM_24] if with_lsm else [])]
    stats = FileStats(Path("odd.evtx"))
    records = iter([{"data": text, "event_record_id": index} for index, text in enumerate(texts, 1)])
    events = list(one_by_one(_fast(Path("odd.evtx"), stats, records, [], 0, CoverageBuilder(), False, read_plan())))
    assert [(e.event_id, e.data.get("User")) for e in events] == ([(24, "CONTOSO\\alice")] if with_lsm else [])
    assert [(i.where, i.reason) for i in stats.issues] == [("record 1", _OUT_OF_RANGE)]


def test_an_event_id_beyond_16_bits_in_a_batch_makes_no_row() -> None:
    records = [RawEvent(1, event_id, 1, channel, "H", "p", {"User": "CONTOSO\\mallory", "Address": "203.0.113.9"})
               for event_id, channel in ((65536 + 21, "Security"), (2**40, "Security"), (-1, "Security"),
                                         (21, CHANNELS[2]))]
    rows = normalise_batch(RawBatch.of(records), "x").to_pylist()
    assert rows == one_at_a_time(records, "x") and [row["event_id"] for row in rows] == [21]


@pytest.mark.parametrize("session_id", ["18446744073709551615", "9223372036854775808", "-9223372036854775809"])
def test_a_session_id_beyond_64_bits_is_none_not_a_crash(session_id: str) -> None:
    """Found beside the review: an LSM SessionID written as a UInt64 above 2**63 ended the read with an
    OverflowError (one record at a time and as columns)."""
    records = [RawEvent(1, 21, 1, CHANNELS[2], "H", "p", {"User": "CONTOSO\\a", "SessionID": session_id})]
    rows = normalise_batch(RawBatch.of(records), "x").to_pylist()
    assert rows == one_at_a_time(records, "x") and rows[0]["session_id"] is None


def test_every_way_a_wanted_record_is_decoded_gives_what_decoding_it_alone_gives() -> None:
    """One block with each path of the fast read: records Arrow takes as columns, a group Arrow refuses (SessionID a
    number in one record, text in another: decoded one by one), a record decoded in full at once (a provider name
    with a backslash), and a log-cleared Security 1102 (noted for coverage). Each comes out as decoding its JSON
    alone gives it, in file order; the 1102 is noted as cleared."""
    from evtrack.coverage import CoverageBuilder
    from evtrack.sources.base import FileStats, one_by_one
    from evtrack.sources.pyevtx_rs import _event_from_json, _fast

    def lsm(event_id: int, record_id: int, session: str) -> str:
        return (LSM_24.replace('"EventID":24,', f'"EventID":{event_id},')
                .replace('"EventRecordID":3,', f'"EventRecordID":{record_id},')
                .replace('"SessionID":2', f'"SessionID":{session}'))

    cleared = (LSM_24.replace('"Name":"Microsoft-Windows-TerminalServices-LocalSessionManager"',
                              '"Name":"Microsoft-Windows-Eventlog"')
               .replace('"EventID":24,', '"EventID":1102,').replace('"EventRecordID":3,', '"EventRecordID":9,')
               .replace('"Channel":"Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"',
                        '"Channel":"Security"')
               .replace('"UserData":{"EventXML":{"#attributes":{"xmlns":"Event_NS"},"User":"CONTOSO\\\\alice",'
                        '"SessionID":2,"Address":"10.0.0.7"}}',
                        '"UserData":{"LogFileCleared":{"SubjectUserName":"admin","SubjectDomainName":"CONTOSO"}}'))
    texts = [lsm(24, 3, "2"), lsm(21, 4, "5"), lsm(21, 5, '"7"'), lsm(24, 6, "3").replace(
        '"Name":"Microsoft-Windows-TerminalServices-LocalSessionManager"', '"Name":"Odd\\\\Provider"'), cleared,
        lsm(25, 10, "4")]
    assert '"Name":"Odd\\\\Provider"' in texts[3] and '"EventID":1102' in texts[4]
    plan = read_plan()
    coverage = CoverageBuilder()
    records = iter([{"data": text, "event_record_id": index} for index, text in enumerate(texts, 1)])
    stats = FileStats(Path("ways.evtx"))
    events = list(one_by_one(_fast(Path("ways.evtx"), stats, records, [], 0, coverage, False, plan)))
    alone = [_event_from_json(text, plan.payload_keys) for text in texts]
    assert [e._replace(data={k: v for k, v in e.data.items() if v is not None}) for e in alone] == events
    assert [e.record_id for e in events] == [3, 4, 5, 6, 9, 10] and stats.issues == []
    assert [span.cleared_us for span in coverage.spans() if span.channel == "Security"] == [(events[4].time_us,)]
