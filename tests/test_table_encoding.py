"""A report's event table carries its repeated strings dictionary-encoded (a slim read): the same values, so the
same sort keys, selections and report as the plain table; every table evtrack hands out stays plain strings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from evtrack import rows as table_rows
from evtrack.api import read_events, read_events_table
from evtrack.dataset import read_events_dataset, write_events_dataset
from evtrack.events import ENCODED_COLUMNS, as_report_reads, decoded, encode, encoded_schema, logon_schema
from evtrack.explain import explain
from evtrack.pipeline import source_from_read
from evtrack.reading import ReadResult, read_inputs
from evtrack.render.events import render_events
from evtrack.usage import ReportSettings, ReportSource, build_report

from .factories import utc

SETTINGS = ReportSettings(created_at=utc(2024, 6, 1), tz="America/New_York")


@pytest.fixture(scope="module")
def fleet(new_york_fleet: Path) -> Path:
    return new_york_fleet


@pytest.fixture(scope="module")
def slim(fleet: Path) -> ReadResult:
    return read_inputs([fleet], slim=True)


def _plain(source: ReportSource) -> ReportSource:
    return replace(source, table=decoded(source.table))


def test_a_slim_read_encodes_the_repeated_strings_and_keeps_their_values(fleet: Path, slim: ReadResult) -> None:
    table = slim.table
    assert table.schema.equals(encoded_schema())
    assert sorted(f.name for f in table.schema if pa.types.is_dictionary(f.type)) == sorted(ENCODED_COLUMNS)
    assert set(ENCODED_COLUMNS) >= {"host", "channel", "provider", "source"}
    plain = decoded(table)
    assert plain.schema.equals(logon_schema())
    assert table.num_rows == plain.num_rows > 100
    for name in ENCODED_COLUMNS:
        assert table[name].to_pylist() == plain[name].to_pylist()
    assert {Path(p).name for p in table["source"].to_pylist()} == {p.name for p in fleet.glob("*.evtx")}
    # smaller: the point of it
    assert table.nbytes < plain.nbytes * 0.7


def test_sort_keys_of_the_encoded_table_are_those_of_the_plain_one(slim: ReadResult) -> None:
    encoded, plain = table_rows.Keys(slim.table), table_rows.Keys(decoded(slim.table))
    for name in logon_schema().names:
        assert np.array_equal(encoded[name], plain[name]), name
        if name in ENCODED_COLUMNS:
            assert encoded.words(name) == plain.words(name)


def test_a_dictionary_with_repeated_values_and_nulls_sorts_and_compares_as_its_values() -> None:
    """Each chunk with its own dictionary, in another order, one with a value twice and a null entry: the keys
    still order the rows as the strings do (nulls last) and call equal values equal."""
    values = [["b", "a", None, "c", "a"], ["c", None, "b", "b"]]
    chunks = [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 2, 3], pa.int32()), pa.array(["b", "a", "c", "a"])),
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), pa.array(["c", None, "b", "b"])),
    ]
    encoded = pa.table({"host": pa.chunked_array(chunks)})
    plain = pa.table({"host": pa.chunked_array([pa.array(v) for v in values])})
    assert encoded["host"].to_pylist() == plain["host"].to_pylist()
    keys, expected = table_rows.Keys(encoded), table_rows.Keys(plain)
    assert keys["host"].tolist() == expected["host"].tolist() == [1, 0, 3, 2, 0, 2, 3, 1, 1]
    assert keys.words("host") == ["a", "b", "c", None]
    # without a null entry (the dictionaries can be unified), a value held twice still ranks once
    twice = pa.table({"host": pa.chunked_array([
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, None], pa.int32()), pa.array(["b", "a", "b"])),
        pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), pa.array(["c", "a"]))])})
    assert table_rows.Keys(twice)["host"].tolist() == [1, 0, 1, 3, 0, 2]
    assert table_rows.Keys(twice).words("host") == ["a", "b", "c", None]


def test_selections_and_rows_are_those_of_the_plain_table(slim: ReadResult) -> None:
    table, plain = slim.table, decoded(slim.table)
    evidence, evidence_plain = table_rows.evidence_table(table), table_rows.evidence_table(plain)
    assert len(evidence) > 50
    assert np.array_equal(evidence.rows, evidence_plain.rows)
    assert evidence.sources == evidence_plain.sources
    rdp_rows = sum(table["rdp"].to_pylist())
    assert len(evidence) < rdp_rows  # the re-export repeats records: each counts once
    positions = list(range(0, len(evidence), 7))
    assert evidence.rows_at(positions) == evidence_plain.rows_at(positions)
    for (offset, batch), (offset_plain, batch_plain) in zip(evidence.batches(50), evidence_plain.batches(50),
                                                            strict=True):
        assert offset == offset_plain
        assert batch.equals(batch_plain)  # plain strings, whichever table they come from
    sessions = table_rows.session_table(table, lambda name: name != "nowhere", {})
    sessions_plain = table_rows.session_table(plain, lambda name: name != "nowhere", {})
    assert len(sessions) > 50
    assert np.array_equal(sessions.rows, sessions_plain.rows)
    assert sessions.placed is not None and sessions_plain.placed is not None
    assert np.array_equal(sessions.placed, sessions_plain.placed)
    assert table_rows.observations(table) == table_rows.observations(plain)
    assert table_rows.take(table, np.array([5, 1, 3])).equals(table_rows.take(plain, np.array([5, 1, 3])))


def test_the_report_and_explanations_are_those_of_the_plain_table(slim: ReadResult) -> None:
    source = source_from_read(slim)
    built, built_plain = build_report(source, SETTINGS), build_report(_plain(source), SETTINGS)
    assert built.users
    assert built.to_dict() == built_plain.to_dict()
    user = built.users[0]
    for query in (user.display_name, user.sid or user.display_name, "nobody-here", "CONTOSO\\administrator"):
        assert explain(source, SETTINGS, query) == explain(_plain(source), SETTINGS, query)


def test_the_tables_evtrack_hands_out_keep_plain_strings(fleet: Path, slim: ReadResult, tmp_path: Path) -> None:
    table = read_events_table(fleet)
    assert table.schema.equals(logon_schema())
    frame = read_events(fleet)
    assert not any(str(dtype) == "category" for dtype in frame.dtypes)
    assert frame["channel"].map(type).eq(str).all()
    written = pq.read_table(pa.BufferReader(render_events(slim.table, "parquet")))
    assert written.schema.equals(logon_schema(), check_metadata=False)
    assert written.equals(decoded(slim.table))
    write_events_dataset(source_from_read(slim), tmp_path / "ds")
    on_disk = pads.dataset(tmp_path / "ds", format="parquet").schema
    assert not any(pa.types.is_dictionary(f.type) for f in on_disk)
    assert decoded(read_events_dataset(tmp_path / "ds").source.table).sort_by(
        [("source", "ascending"), ("record_id", "ascending")]).equals(
        decoded(slim.table).sort_by([("source", "ascending"), ("record_id", "ascending")]))


def test_a_dictionary_holding_a_null_from_another_input_gives_the_plain_report() -> None:
    """evtrack never puts a null in a dictionary, but a report input written by someone else might, and Arrow cannot
    unify such dictionaries: the report reads that column plain (found by review: a raw ArrowInvalid before)."""
    from .factories import ev, lsm21, span

    rows = [ev(utc(2024, 3, 4, 9)), lsm21(utc(2024, 3, 4, 9, 0, 5)), ev(utc(2024, 3, 5, 9), "bob", record_id=7)]
    plain = pa.Table.from_pylist(rows, schema=logon_schema())
    coverage = [span(utc(2024, 3, 1), utc(2024, 3, 30))]
    settings = ReportSettings(created_at=utc(2024, 6, 1))
    expected = build_report(ReportSource(plain, coverage, (), "t", 0, 0), settings).to_dict()
    encoded = pa.Table.from_batches([encode(b) for b in plain.to_batches(max_chunksize=2)], schema=encoded_schema())
    host = plain["host"].to_pylist()
    nulls = pa.chunked_array([
        pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array([host[0], None])),
        pa.DictionaryArray.from_arrays(pa.array([1], pa.int32()), pa.array([None, host[2]]))])
    odd = encoded.set_column(encoded.schema.get_field_index("host"), "host", nulls)
    assert as_report_reads(encoded) is encoded  # evtrack's own tables pass untouched
    assert as_report_reads(odd)["host"].type == pa.string() and as_report_reads(odd)["host"].to_pylist() == host
    assert build_report(ReportSource(odd, coverage, (), "t", 0, 0), settings).to_dict() == expected
