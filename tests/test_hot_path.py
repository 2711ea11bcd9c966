"""The readers' hot path (issue 15): rows as tuples with the verdicts the catalogue gives, the table they make, and
the fast time parser agreeing with the full one."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtrack import catalogue
from evtrack.catalogue import LSM, SECURITY, Evidence, lookup
from evtrack.events import (
    ACCOUNT_AT,
    COLUMNS,
    BatchBuilder,
    classify,
    logon_schema,
    needed_for_report,
    normalise,
    normalise_row,
    row_needed_for_report,
)
from evtrack.sources.base import RawEvent
from evtrack.sources.xmlfile import _parse_system_time, parse_system_time

_ADDRESSES = st.sampled_from([None, "", " ", "-", "10.1.2.3", " 10.1.2.3 ", "127.0.0.1", "::1", "0.0.0.0",
                              "::ffff:10.0.0.9", "LOCAL", "fe80::1%3"])
_TYPES = st.sampled_from([None, "", "2", "3", "7", "10", " 10", "0xa", "12", "128", "-1", "x"])


def _security(event_id: int, logon_type: str | None, address: str | None) -> RawEvent:
    data = {"TargetUserName": "ann", "TargetDomainName": "CONTOSO", "TargetUserSid": "S-1-5-21-1-2-3-1001",
            "TargetLogonId": "0x3e7", "LogonType": logon_type, "IpAddress": address, "ElevatedToken": "%%1842"}
    return RawEvent(1_700_000_000_000_000, event_id, 7, "Security", "H1.contoso.local",
                    "Microsoft-Windows-Security-Auditing", data)


@settings(max_examples=300, deadline=None)
@given(event_id=st.sampled_from([4624, 4634]), logon_type=_TYPES, address=_ADDRESSES)
def test_a_row_carries_the_catalogue_verdict_whatever_came_before(event_id: int, logon_type: str | None,
                                                                    address: str | None) -> None:
    """The verdict is memoised per payload: the answer must still be the rule's for this row (compared with
    :func:`classify`, which asks the catalogue entry directly)."""
    row = normalise(_security(event_id, logon_type, address), "f.evtx")
    assert row is not None
    expected = classify("Security", event_id, row["logon_type"], row["address"], row["session_name"])
    assert (row["rdp"], row["reason"]) == (expected.rdp, expected.reason)
    definition = lookup("Security", event_id)
    assert definition is not None and definition.kind is not None
    kind = (definition.rekind(row["logon_type"]) if definition.rekind else None) or definition.kind
    assert row["kind"] == kind.value


def test_the_tuple_and_the_dict_are_one_row() -> None:
    raw = _security(4624, "10", "10.1.2.3")
    as_tuple = normalise_row(raw, "f.evtx")
    assert as_tuple is not None and len(as_tuple) == len(COLUMNS)
    assert normalise(raw, "f.evtx") == dict(zip(COLUMNS, as_tuple, strict=True))
    assert row_needed_for_report(as_tuple) is needed_for_report(dict(zip(COLUMNS, as_tuple, strict=True))) is True
    network = normalise_row(_security(4624, "3", "10.1.2.3"), "f.evtx")
    assert network is not None and row_needed_for_report(network) is False
    assert tuple(network[i] for i in ACCOUNT_AT) == ("ann", "CONTOSO", "S-1-5-21-1-2-3-1001", "H1.contoso.local")
    assert normalise_row(RawEvent(1, 4688, 1, "Security", "H", "P", {}), "f") is None  # not in the catalogue


def test_lsm_rows_split_the_qualified_user_and_take_the_session_id() -> None:
    raw = RawEvent(5, 21, 9, "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", "H2",
                   "Microsoft-Windows-TerminalServices-LocalSessionManager",
                   {"User": " CONTOSO\\bob ", "SessionID": "4", "Address": "10.9.9.9"})
    row = normalise(raw, "g.evtx")
    assert row is not None
    assert (row["user"], row["domain"], row["session_id"], row["address"], row["rdp"], row["kind"]) == (
        "bob", "CONTOSO", 4, "10.9.9.9", True, "logon")
    assert lookup(LSM, 21) is not None


def test_a_swapped_catalogue_entry_is_read_not_a_remembered_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are made by a maker cached per catalogue entry: an entry replaced under the same key (as a test or a
    later catalogue does) must be the one applied."""
    raw = _security(4624, "10", "10.1.2.3")
    before = normalise(raw, "f")
    assert before is not None and before["rdp"] is True
    entry = lookup(SECURITY, 4624)
    assert entry is not None
    never = replace(entry, evidence=lambda _t, _a, _s: Evidence(False, "swapped"), rekind=None)
    monkeypatch.setitem(catalogue.BY_KEY, (SECURITY, 4624), never)
    after = normalise(raw, "f")
    assert after is not None and (after["rdp"], after["reason"], after["kind"]) == (False, "swapped", "logon")


def test_the_builder_makes_the_table_the_rows_describe() -> None:
    rows = [normalise(_security(4624, t, a), f"f{i}.evtx") for i, (t, a) in
            enumerate([("10", "10.1.2.3"), ("3", None), ("7", "127.0.0.1"), (None, "::1")])]
    builder = BatchBuilder(3)
    batches = []
    for row in rows:
        assert row is not None
        builder.add_row(tuple(row[name] for name in COLUMNS))
        if builder.full():
            batches.append(builder.flush())
    assert builder.rows == 1
    batches.append(builder.flush())
    assert builder.rows == 0 and [b.num_rows for b in batches] == [3, 1]
    table = pa.Table.from_batches(batches, schema=logon_schema())
    assert table.equals(pa.Table.from_pylist(rows, schema=logon_schema()))
    assert BatchBuilder().flush().num_rows == 0


_NEAR_TIME = st.builds(
    lambda parts, edits: _edited("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:06d}Z".format(*parts), edits),
    st.tuples(st.integers(1500, 2300), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
              st.integers(0, 61), st.integers(0, 61), st.integers(0, 999_999)),
    st.lists(st.tuples(st.integers(0, 26), st.sampled_from("0123456789:-.TZ +x\u0663\u00b2")), max_size=3),
)


def _edited(text: str, edits: list[tuple[int, str]]) -> str:
    chars = list(text)
    for at, char in edits:
        chars[at] = char
    return "".join(chars)


@settings(max_examples=2000, deadline=None)
@given(text=_NEAR_TIME)
def test_the_fast_time_parser_agrees_with_the_full_one(text: str) -> None:
    """The fast path (minutes remembered) must give what the full parser gives, for well-formed and damaged
    times alike: a damaged time is untimed (None) by both, never a plausible wrong moment."""
    assert parse_system_time(text) == _parse_system_time(text)
    assert parse_system_time(text) == _parse_system_time(text)  # again, from the remembered minute


def test_the_fast_time_parser_on_known_times() -> None:
    assert parse_system_time("2024-01-01T07:34:48.141731Z") == 1_704_094_488_141_731
    assert parse_system_time("2024-02-30T07:34:48.141731Z") is None
    assert parse_system_time("2024-01-01T07:34.48.141731Z") is None  # a dot where a colon belongs
    assert parse_system_time("2024-01-01T07:3+:48.141731Z") is None


def test_a_raw_event_without_payload_pickles_copies_and_keeps_its_empty_payload() -> None:
    """RawEvent is a named tuple (fast to make); records read without a payload share one empty payload, which
    must pickle (workers, Dask), copy and serialise like a dict, and refuse to change."""
    import copy
    import json
    import pickle

    bare = RawEvent(1, 4688, 9, "Security", "H", "P")
    assert pickle.loads(pickle.dumps(bare)) == bare and copy.deepcopy(bare) == bare
    assert json.dumps(bare.data) == "{}" and dict(bare.data) == {}
    for change in (lambda d: d.__setitem__("User", "x"), lambda d: d.update(User="x"), lambda d: d.setdefault("a"),
                   lambda d: d.__ior__({"a": "b"}), lambda d: d.pop("a", None), lambda d: d.clear()):
        with pytest.raises(TypeError):
            change(bare.data)
    assert RawEvent(2, 4688, 9, "Security", "H", "P").data == {}
