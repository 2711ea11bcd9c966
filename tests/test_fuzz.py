"""Fuzzing every reader: mutated .evtx and XML inputs must yield records or counted, named issues, quickly.

A mutation is a *recipe*: a base input (a generated log, a hand-written XML export, or a file in
``../shared/evtx`` named, never copied) plus a list of operations, optionally followed by recomputing the chunk
checksums so that the mutation reaches the record decoders even when checksums are verified. Recipes are plain
JSON, so the inputs that found bugs are kept as recipes in ``tests/fuzz_corpus/`` (see its README.md) and the
long run (``benchmarks/fuzz.py``) saves what it finds the same way.

What counts as a bug: any exception out of a reader other than :class:`evtrack.errors.SourceError` for a file
that cannot be opened at all (and out of :func:`evtrack.reading.read_file`, none at all); more than a few seconds
per MB; records and issues that do not add up.
"""

from __future__ import annotations

import binascii
import json
import struct
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtrack.catalogue import read_plan
from evtrack.errors import SourceError
from evtrack.reading import FileResult, read_file
from evtrack.sources.base import FileStats, RawEvent
from evtrack.sources.pyevtx_rs import read_pyevtx_rs
from evtrack.sources.python_evtx import read_python_evtx
from evtrack.sources.xmlfile import MAX_DEPTH, read_xml

from .conftest import SHARED, SHARED_ABSENT, logon_4624, lsm, xml_event

CORPUS = Path(__file__).parent / "fuzz_corpus"
#: What every reader is asked to read: the catalogue's plan, as read_file hands it.
PLAN = read_plan()
FILE_HEADER, CHUNK, CHUNK_HEADER = 0x1000, 0x10000, 0x200
#: Seconds an input may take, per MB and at least (generous: the machine may be busy).
SECONDS_PER_MB, MIN_SECONDS = 5.0, 5.0
#: Values that break offset and size fields: zero, one, sign bits, just past a chunk, all ones.
ABSURD = (0, 1, 0x7F, 0x80, 0xFF, 0x1FF, 0x200, 0xFFFF, 0x10000, 0x10001, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
          1 << 63, (1 << 64) - 1)  # fmt: skip
FILE_FIELDS = ((0x08, 8), (0x10, 8), (0x18, 8), (0x20, 4), (0x24, 2), (0x26, 2), (0x28, 2), (0x2A, 2), (0x78, 4))
CHUNK_FIELDS = (
    (0x08, 8), (0x10, 8), (0x18, 8), (0x20, 8), (0x28, 4), (0x2C, 4), (0x30, 4), (0x34, 4), (0x7C, 4),
    *((0x80 + 4 * i, 4) for i in range(0, 64, 7)), *((0x180 + 4 * i, 4) for i in range(0, 32, 5)),
)  # fmt: skip
#: BinXML bytes that open structures: fragment header, template instance, element, substitutions, end of stream.
TOKENS = (b"\x0f\x01\x01\x00", b"\x0c\x01", b"\x01\xff\xff", b"\x41\xff\xff", b"\x0d\x00\x00\x21", b"\x0e\xff\xff\x21",
          b"\x00", b"\x21", b"\xff")  # fmt: skip
HOSTILE_XML = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>',
    '<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><e>&xxe;</e>',
    '<!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd">',
    "<a>" * 200, "</a>" * 50, "<Event>" * 100, "&xxe;", "&#0;", "&#xD800;", "<![CDATA[x]]>", "]]>", "<?pi x?>",
    "<!-- c -->", '<Data Name="' + "A" * 5000 + '">', "&amp;" * 2000, "\x00", "<", "&",
)  # fmt: skip
XML_BYTES = (b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00\xd8", b"\xef\xbb\xbf")

Recipe = dict[str, Any]


# ---------------------------------------------------------------------------------------------------------------
# Bases


@cache
def synth_dir() -> Path:
    """Small generated logs (one chunk each), written once per process into a temporary folder."""
    import tempfile

    from evtrack.synth import write_sample

    out = Path(tempfile.mkdtemp(prefix="evtrack-fuzz-"))
    write_sample(out, users=3, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 8), noise_ratio=1, reexport=False)
    return out


def xml_base(name: str) -> bytes:
    events = [logon_4624(10, record_id=7), lsm(21, record_id=8), logon_4624(3, user="=HYPERLINK(\"x\")", record_id=9),
              xml_event(1149, record_id=10, user_data={"Param1": "bob", "Param2": "C", "Param3": "10.0.0.9"})]
    if name == "stream":
        return "".join(events).encode()
    if name == "saved":
        return ('<?xml version="1.0" encoding="utf-8"?>\n<Events>' + "\n".join(events) + "</Events>").encode()
    if name == "utf16":
        return b"\xff\xfe" + ('<?xml version="1.0" encoding="UTF-16"?><Events>' + "".join(events) + "</Events>").encode(
            "utf-16-le"
        )
    raise KeyError(name)


SYNTH_BASES = ("synth:RDSH01-Security.evtx", "synth:RDSH01-LocalSessionManager.evtx",
               "synth:RDSH01-RemoteConnectionManager.evtx")  # fmt: skip
XML_BASES = ("xml:stream", "xml:saved", "xml:utf16")
SHARED_BASES = tuple(f"shared:{path.name}" for path in sorted(SHARED.glob("*.evtx"))) if SHARED.is_dir() else ()


def base_bytes(base: str, chunks: int = 2) -> bytes:
    """The bytes a recipe starts from; .evtx bases are cut to their file header and first ``chunks`` chunks."""
    kind, _, name = base.partition(":")
    if kind == "xml":
        return xml_base(name)
    if kind == "bomb":  # e.g. bomb:2x30, see _bomb_record
        fanout, depth = map(int, name.split("x"))
        return evtx_file([_bomb_record(fanout, depth)])
    if kind == "synth":
        data = (synth_dir() / name).read_bytes()
    elif kind == "shared":
        if not SHARED.is_dir():
            pytest.skip(SHARED_ABSENT)
        data = (SHARED / name).read_bytes()
    else:
        raise KeyError(base)
    return data[: FILE_HEADER + CHUNK * max(chunks, 1)]


# ---------------------------------------------------------------------------------------------------------------
# Mutations


def _put(data: bytearray, offset: int, width: int, value: int) -> None:
    if offset >= 0 and offset + width <= len(data):
        data[offset : offset + width] = (value % (1 << (8 * width))).to_bytes(width, "little")


def _records(data: bytes | bytearray, chunk: int) -> list[int]:
    """Absolute offsets of the records of ``chunk``, walking record sizes while they make sense."""
    start = FILE_HEADER + CHUNK * chunk
    offsets: list[int] = []
    pos = start + CHUNK_HEADER
    while pos + 28 <= min(len(data), start + CHUNK) and data[pos : pos + 4] == b"\x2a\x2a\x00\x00":
        offsets.append(pos)
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if size < 28:
            break
        pos += size
    return offsets


def _record(data: bytearray, chunk: int, index: int) -> int | None:
    records = _records(data, chunk)
    return records[index % len(records)] if records else None


def _instance(data: bytearray, record: int) -> tuple[int, int] | None:
    """(position of the record's template instance token, position of its substitution count)."""
    pos = record + 24
    if pos + 14 > len(data):
        return None
    if data[pos] == 0x0F:
        pos += 4
    if data[pos] != 0x0C:
        return None
    template = struct.unpack_from("<I", data, pos + 6)[0]
    chunk_start = FILE_HEADER + CHUNK * ((record - FILE_HEADER) // CHUNK)
    after = pos + 10
    if template == after - chunk_start and after + 24 <= len(data):
        after += 24 + struct.unpack_from("<I", data, after + 20)[0]
    return pos, after


def fix_crcs(data: bytearray) -> None:
    """Recompute the file header CRC and every whole chunk's header and data CRCs (as a careful forger would)."""
    if len(data) >= 128:
        _put(data, 0x7C, 4, binascii.crc32(data[:120]))
    for start in range(FILE_HEADER, len(data) - CHUNK + 1, CHUNK):
        chunk = data[start : start + CHUNK]
        if chunk[:8] != b"ElfChnk\x00":
            continue
        free = struct.unpack_from("<I", chunk, 0x30)[0]
        if CHUNK_HEADER <= free <= CHUNK:
            _put(data, start + 0x34, 4, binascii.crc32(chunk[CHUNK_HEADER:free]))
        chunk = data[start : start + CHUNK]
        _put(data, start + 0x7C, 4, binascii.crc32(chunk[128:512], binascii.crc32(chunk[:120])))


def apply_op(data: bytearray, op: list[Any]) -> bytearray:
    """Apply one mutation; positions wrap around the input, so every operation applies to every base."""
    name, args = op[0], op[1:]
    size = max(len(data), 1)
    chunks = max((len(data) - FILE_HEADER) // CHUNK, 0)
    if name == "truncate":
        return data[: args[0] % (len(data) + 1)]
    if name == "flip" and data:
        data[args[0] % size] ^= 1 << (args[1] % 8)
    elif name == "set":
        pos = args[0] % size
        data[pos : pos + len(bytes.fromhex(args[1]))] = bytes.fromhex(args[1])
    elif name == "insert":
        pos = args[0] % (len(data) + 1)
        data[pos:pos] = bytes.fromhex(args[1]) * max(1, min(args[2] if len(args) > 2 else 1, 100_000))
    elif name == "zero":
        pos = args[0] % size
        data[pos : pos + args[1]] = bytes(len(data[pos : pos + args[1]]))
    elif name == "dup_chunk" and chunks:
        src = FILE_HEADER + CHUNK * (args[0] % chunks)
        copy = data[src : src + CHUNK]
        if args[1] % (chunks + 1) == chunks:
            data += copy
        else:
            dst = FILE_HEADER + CHUNK * (args[1] % chunks)
            data[dst : dst + CHUNK] = copy
    elif name == "file_field":
        offset, width = FILE_FIELDS[args[0] % len(FILE_FIELDS)]
        _put(data, offset, width, args[1])
    elif name == "chunk_field" and chunks:
        offset, width = CHUNK_FIELDS[args[1] % len(CHUNK_FIELDS)]
        _put(data, FILE_HEADER + CHUNK * (args[0] % chunks) + offset, width, args[2])
    elif name == "record_field" and chunks:
        record = _record(data, args[0] % chunks, args[1])
        if record is not None:
            which = args[2] % 4
            if which == 0:  # size
                _put(data, record + 4, 4, args[3])
            elif which == 1:  # the size copy at the end
                _put(data, record + struct.unpack_from("<I", data, record + 4)[0] - 4, 4, args[3])
            elif which == 2:  # record number
                _put(data, record + 8, 8, args[3])
            else:  # a byte of the BinXML, to a token that opens a structure
                _put(data, record + 24 + args[3] % 64, 1, TOKENS[args[3] % len(TOKENS)][0])
    elif name == "template" and chunks:
        record = _record(data, args[0] % chunks, args[1])
        found = _instance(data, record) if record is not None else None
        if found is not None:
            token, count = found
            chunk_start = FILE_HEADER + CHUNK * ((token - FILE_HEADER) // CHUNK)
            how = args[2] % 4
            if how == 0:  # the template offset points at the instance itself (a self-reference)
                _put(data, token + 6, 4, token - chunk_start)
            elif how == 1:  # an absurd template offset
                _put(data, token + 6, 4, args[3])
            elif how == 2:  # a huge substitution count
                _put(data, count, 4, args[3])
            else:  # the template's next offset (in the chunk's template chain) points at itself
                template = struct.unpack_from("<I", data, token + 6)[0]
                _put(data, chunk_start + template, 4, template)
    elif name == "value" and chunks:
        record = _record(data, args[0] % chunks, args[1])
        if record is not None:  # the substitution value equal to the header's timestamp (0) or number (1)
            field = record + (16 if args[2] % 2 == 0 else 8)
            end = record + struct.unpack_from("<I", data, record + 4)[0]
            hit = data.find(data[field : field + 8], record + 24, end)
            if hit > 0:
                _put(data, hit, 8, args[3])
    elif name in ("string_chain", "template_chain") and chunks:  # a bucket's first entry points at itself
        start = FILE_HEADER + CHUNK * (args[0] % chunks)
        table, size = (0x80, 64) if name == "string_chain" else (0x180, 32)
        buckets = [struct.unpack_from("<I", data, start + table + 4 * i)[0] for i in range(size)]
        strings = [offset for offset in buckets if CHUNK_HEADER <= offset < CHUNK - 8]
        if strings:
            offset = strings[args[1] % len(strings)]
            _put(data, start + offset, 4, offset)
    elif name == "tokens" and chunks:
        record = _record(data, args[0] % chunks, args[1])
        if record is not None:
            pos = record + 24 + args[2] % 256
            run = b"".join(TOKENS[i % len(TOKENS)] for i in args[3])
            data[pos : pos + len(run)] = run[: max(0, len(data) - pos)]
    return data


def build(recipe: Recipe) -> bytes:
    data = bytearray(base_bytes(recipe["base"], recipe.get("chunks", 2)))
    for op in recipe.get("ops", []):
        data = apply_op(data, op)
    if recipe.get("fix_crcs"):
        fix_crcs(data)
    return bytes(data)


# ---------------------------------------------------------------------------------------------------------------
# Running an input


class Crash(AssertionError):
    """A reader broke its contract on an input."""


#: Crashes whose fix belongs to a file this suite does not own, by the start of their message, and why. The random
#: runs tolerate them; delete an entry once it is fixed, and add its recipe to the regression corpus.
KNOWN_ELSEWHERE: dict[str, str] = {}


def tolerated(run: Callable[[], object]) -> None:
    """Run one fuzz input; a crash of a known kind fixed elsewhere is let through, any other fails the test."""
    try:
        run()
    except Crash as exc:
        if not str(exc).startswith(tuple(KNOWN_ELSEWHERE)):
            raise


def _drain(reader: Callable[..., Any], path: Path, verify: bool) -> tuple[int, FileStats]:
    stats = FileStats(path)
    count = 0
    try:
        for event in reader(path, stats, plan=PLAN, verify_checksums=verify):
            assert isinstance(event, RawEvent)
            count += 1
    except SourceError:
        return -1, stats  # cannot be opened at all: allowed
    except BaseException as exc:  # PanicException from pyo3 derives from BaseException
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise Crash(f"{reader.__name__} raised {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc
    if count != stats.records:
        raise Crash(f"{reader.__name__} yielded {count} records but counted {stats.records}")
    for issue in stats.issues:
        if not issue.where or not issue.reason or issue.skipped < 0:
            raise Crash(f"{reader.__name__} gave an unnamed issue: {issue!r}")
    return count, stats


ENGINES = ("evtx", "python-evtx")
READERS: dict[str, Callable[..., Any]] = {"evtx": read_pyevtx_rs, "python-evtx": read_python_evtx}


def run_input(path: Path, verify: bool = True, xml: bool = False, engines: tuple[str, ...] = ENGINES) -> dict[str, int]:
    """Every reader (and read_file end to end) on one input; raises :class:`Crash` on a contract breach."""
    limit = MIN_SECONDS + SECONDS_PER_MB * path.stat().st_size / 1e6
    summary = {"records": 0, "issues": 0, "refused": 0}
    readers = (read_xml,) if xml else tuple(READERS[engine] for engine in engines)
    for reader in readers:
        started = time.perf_counter()
        count, stats = _drain(reader, path, verify)
        elapsed = time.perf_counter() - started
        if elapsed > limit:
            raise Crash(f"{reader.__name__} took {elapsed:.1f} s (limit {limit:.1f} s)")
        summary["records"] += max(count, 0)
        summary["issues"] += len(stats.issues)
        summary["refused"] += count < 0
    for engine in engines[:1] if xml else engines:
        try:
            result = read_file(path, engine=engine, verify_checksums=verify)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise Crash(f"read_file({engine}) raised {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc
        rows = sum(batch.num_rows for batch in result.batches)
        if rows > result.stats.records:
            raise Crash(f"read_file({engine}) made {rows} rows from {result.stats.records} records")
        if not xml:
            _check_slim_and_ranges(path, engine, verify, result)
    return summary


def _essence(result: FileResult, slim: bool) -> tuple[object, ...]:
    """What must not change between ways of reading one file (issue texts aside: they may name offsets)."""
    import pyarrow as pa

    from evtrack.events import needed_for_report

    rows = [row for batch in result.batches for row in pa.Table.from_batches([batch]).to_pylist()]
    kept = [row for row in rows if slim or needed_for_report(row)]
    stats = result.stats
    return (kept, stats.records, stats.skipped, [(i.where, i.skipped) for i in stats.issues], result.error,
            result.coverage.spans())


def _check_slim_and_ranges(path: Path, engine: str, verify: bool, whole: FileResult) -> None:
    """A slim read keeps exactly the rows a report needs; reading a file as two chunk ranges equals reading it
    whole (the default engine, as ``--jobs`` does with large files)."""
    import pyarrow as pa

    from evtrack.events import needed_for_report
    from evtrack.reading import join_ranges
    from evtrack.sources.guard import chunk_count, splittable

    slim = read_file(path, engine=engine, verify_checksums=verify, slim=True)
    rows = [row for batch in whole.batches for row in pa.Table.from_batches([batch]).to_pylist()]
    accounts = {(r["user"], r["domain"], r["sid"], r["host"]) for r in rows
                if not needed_for_report(r) and r["user"] is not None}
    if _essence(slim, True) != _essence(whole, False) or slim.observations != accounts:
        raise Crash(f"read_file({engine}, slim=True) differs from a full read")
    count = chunk_count(path.stat().st_size)
    if engine != "evtx" or count < 2 or whole.error is not None or not splittable(path):
        return  # plan_units never splits such a file
    middle = count // 2
    parts = [read_file(path, engine=engine, verify_checksums=verify, slim=True, chunks=(0, middle)),
             read_file(path, engine=engine, verify_checksums=verify, slim=True, chunks=(middle, count))]
    joined = join_ranges(parts)
    if _essence(joined, True) != _essence(slim, True) or joined.observations != slim.observations:
        raise Crash(f"read_file({engine}) in two chunk ranges differs from a whole read")


def run_recipe(recipe: Recipe, folder: Path, engines: tuple[str, ...] = ENGINES) -> dict[str, int]:
    xml = recipe["base"].startswith("xml:")
    path = folder / ("input.xml" if xml else "input.evtx")
    path.write_bytes(build(recipe))
    return run_input(path, recipe.get("verify", True), xml, engines)


# ---------------------------------------------------------------------------------------------------------------
# Strategies

_pos = st.integers(0, 1 << 20)
_value = st.one_of(st.sampled_from(ABSURD), st.integers(0, (1 << 32) - 1))
_hex = st.binary(min_size=1, max_size=16).map(bytes.hex)
EVTX_OPS = st.one_of(
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("set"), _pos, _hex),
    st.tuples(st.just("zero"), _pos, st.integers(1, 4096)),
    st.tuples(st.just("dup_chunk"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("file_field"), st.integers(0, 20), _value),
    st.tuples(st.just("chunk_field"), st.integers(0, 3), st.integers(0, 40), _value),
    st.tuples(st.just("record_field"), st.integers(0, 3), st.integers(0, 300), st.integers(0, 3), _value),
    st.tuples(st.just("template"), st.integers(0, 3), st.integers(0, 300), st.integers(0, 3), _value),
    st.tuples(st.just("value"), st.integers(0, 3), st.integers(0, 300), st.integers(0, 1),
              st.sampled_from((0, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 2_650_466_808_010_000_000))),
    st.tuples(st.sampled_from(("string_chain", "template_chain")), st.integers(0, 3), st.integers(0, 63)),
    st.tuples(st.just("tokens"), st.integers(0, 3), st.integers(0, 300), st.integers(0, 255),
              st.lists(st.integers(0, 8), min_size=1, max_size=64)),
).map(list)
XML_OPS = st.one_of(
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("set"), _pos, st.sampled_from(XML_BYTES).map(bytes.hex)),
    st.tuples(st.just("insert"), _pos, st.sampled_from(HOSTILE_XML).map(lambda s: s.encode().hex()),
              st.sampled_from((1, 2, 50))),
    st.tuples(st.just("zero"), _pos, st.integers(1, 64)),
).map(list)


def recipes(bases: tuple[str, ...]) -> st.SearchStrategy[Recipe]:
    """Recipes over the given .evtx bases (and the XML bases, when ``bases`` is empty of .evtx: XML only)."""
    evtx = st.fixed_dictionaries({
        "base": st.sampled_from(bases), "chunks": st.integers(1, 2), "ops": st.lists(EVTX_OPS, min_size=1, max_size=6),
        "fix_crcs": st.booleans(), "verify": st.booleans(),
    })  # fmt: skip
    xml = st.fixed_dictionaries({"base": st.sampled_from(XML_BASES), "ops": st.lists(XML_OPS, min_size=1, max_size=5)})
    return st.one_of(evtx, xml) if bases else xml


# ---------------------------------------------------------------------------------------------------------------
# Tests: a short fixed-seed run, the regression corpus, hostile XML


FUZZ_SETTINGS = settings(derandomize=True, max_examples=150, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip


@FUZZ_SETTINGS
@given(recipe=recipes(SYNTH_BASES))
def test_generated_logs_mutated(recipe: Recipe, tmp_path_factory: pytest.TempPathFactory) -> None:
    tolerated(lambda: run_recipe(recipe, tmp_path_factory.mktemp("fuzz")))


@pytest.mark.shared
@settings(FUZZ_SETTINGS, max_examples=60)
@given(data=st.data())
def test_shared_logs_mutated(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    if not SHARED_BASES:
        pytest.skip("../shared/evtx is not present")
    recipe = data.draw(recipes(SHARED_BASES))
    tolerated(lambda: run_recipe(recipe, tmp_path_factory.mktemp("fuzz")))


@FUZZ_SETTINGS
@given(recipe=recipes(()))
def test_xml_exports_mutated(recipe: Recipe, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_recipe(recipe, tmp_path_factory.mktemp("fuzz"))


def corpus() -> list[tuple[str, Recipe]]:
    return [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(CORPUS.glob("*.json"))]


@pytest.mark.parametrize(("name", "recipe"), corpus(), ids=[name for name, _ in corpus()])
def test_regression_corpus(name: str, recipe: Recipe, tmp_path: Path) -> None:
    """Each input that once broke a reader: now read within bounds, with its issues named."""
    expect = recipe.get("expect", {})
    run_recipe(recipe, tmp_path, tuple(recipe.get("engines", ENGINES)))
    xml = recipe["base"].startswith("xml:")
    path = tmp_path / ("input.xml" if xml else "input.evtx")
    reader = read_xml if xml else read_python_evtx
    stats = FileStats(path)
    list(reader(path, stats, plan=PLAN, verify_checksums=recipe.get("verify", True)))
    if "issue" in expect:
        assert any(expect["issue"] in issue.reason for issue in stats.issues), stats.issues
    if "records" in expect:
        assert stats.records == expect["records"], stats.issues


#: What a recipe may hold: the keys :func:`build`, :func:`run_recipe` and :func:`test_regression_corpus` read. A
#: corpus input is a fixed bug, replayed through every engine it names; a key nothing reads would skip a check
#: without a word (as ``rust_xfail`` once did: a Rust-engine test that could only pass or skip).
RECIPE_KEYS = frozenset({"base", "chunks", "ops", "fix_crcs", "verify", "engines", "expect"})


def test_corpus_recipes_hold_only_keys_the_harness_reads() -> None:
    recipes = corpus()
    assert len(recipes) == len(list(CORPUS.glob("*.json"))) >= 9
    assert {name: sorted(set(recipe) - RECIPE_KEYS) for name, recipe in recipes if set(recipe) - RECIPE_KEYS} == {}
    assert all(set(recipe.get("engines", ENGINES)) <= set(ENGINES) for _, recipe in recipes)


def test_corpus_readme_names_every_input() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for path in CORPUS.glob("*.json"):
        assert f"`{path.name}`" in readme


# ---- hand-made hostile inputs


def _bomb_record(fanout: int, depth: int) -> bytes:
    """BinXML of one record that instantiates a template whose body repeats one BinXML substitution ``fanout``
    times, the value being another instance of the same template, ``depth`` levels down: evaluated naively,
    ``fanout ** depth`` expansions. Offsets are chunk-relative; the record sits at chunk offset 0x200."""
    name = "Event".encode("utf-16-le")
    body_at = 0x200 + 24 + 4 + 10  # the inline template definition follows the first instance token
    element = 0x200 + 24 + 4 + 10 + 24 + 4
    body = (b"\x0f\x01\x01\x00" + b"\x01\xff\xff" + struct.pack("<II", 0, element + 11)
            + struct.pack("<IHH", 0, 0, len(name) // 2) + name + b"\x00\x00" + b"\x02"
            + b"\x0d\x00\x00\x21" * fanout + b"\x04\x00")  # fmt: skip
    body = body[:7] + struct.pack("<I", len(body) - 11) + body[11:]
    value = struct.pack("<IHBx", 1, 0, 0)  # the innermost instance: one null value
    for _ in range(depth):
        instance = b"\x0f\x01\x01\x00" + b"\x0c\x01" + struct.pack("<II", 0, body_at) + value
        value = struct.pack("<IHBx", 1, len(instance), 0x21) + instance
    definition = struct.pack("<I16sI", 0, b"\x00" * 16, len(body)) + body
    return b"\x0f\x01\x01\x00" + b"\x0c\x01" + struct.pack("<II", 0, body_at) + definition + value + b"\x00"


def evtx_file(binxml: list[bytes]) -> bytes:
    """A file of one chunk holding the given record BinXML, with valid checksums."""
    chunk = bytearray(CHUNK)
    pos = CHUNK_HEADER
    for number, payload in enumerate(binxml, 1):
        size = 24 + len(payload) + 4
        chunk[pos : pos + size] = struct.pack("<IIQQ", 0x2A2A, size, number, 0) + payload + struct.pack("<I", size)
        last, pos = pos, pos + size
    chunk[:0x30] = b"ElfChnk\x00" + struct.pack("<QQQQII", 1, len(binxml), 1, len(binxml), 128, last)
    _put(chunk, 0x30, 4, pos)
    header = bytearray(FILE_HEADER)
    header[:0x2C] = b"ElfFile\x00" + struct.pack("<QQQIHHHH", 0, 0, len(binxml) + 1, 128, 1, 3, 0x1000, 1)
    data = header + chunk
    fix_crcs(data)
    return bytes(data)


@pytest.mark.parametrize(("fanout", "depth"), [(2, 30), (8, 12), (2, 40)])
def test_exponential_binxml_expansion_is_bounded(fanout: int, depth: int, tmp_path: Path) -> None:
    """Bug (fuzzing): a record whose template re-instantiates itself through repeated substitutions hung the
    python-evtx engine (our evaluator and python-evtx's renderer both expand each repetition anew)."""
    path = tmp_path / "bomb.evtx"
    path.write_bytes(evtx_file([_bomb_record(fanout, depth)]))
    started = time.perf_counter()
    stats = FileStats(path)
    assert list(read_python_evtx(path, stats, plan=PLAN)) == []
    assert [issue.where for issue in stats.issues] == ["record 1"]
    assert "corrupt record" in stats.issues[0].reason
    assert time.perf_counter() - started < 20


RUST_IN_A_BOX = """
import resource, sys
from pathlib import Path
from evtrack.catalogue import read_plan
from evtrack.sources.base import FileStats
from evtrack.sources.pyevtx_rs import read_pyevtx_rs
PLAN = read_plan()
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
path = Path(sys.argv[1])
stats = FileStats(path)
print(sum(1 for _ in read_pyevtx_rs(path, stats, plan=PLAN)), stats.skipped)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the memory limit in the child uses POSIX resource limits")
def test_exponential_binxml_expansion_in_pyevtx_rs(tmp_path: Path) -> None:
    """pyevtx-rs 0.14 expands a nested BinXML value once per substitution that names it, without a bound (memory
    grows 4x per level until the process is killed, which no except clause can catch): read_pyevtx_rs must refuse
    such chunks before pyevtx-rs sees them (evtrack.sources.guard). Run in a memory-limited child, just in case."""
    import subprocess
    import sys

    path = tmp_path / "bomb.evtx"
    path.write_bytes(evtx_file([_bomb_record(2, 30)]))
    try:
        done = subprocess.run([sys.executable, "-c", RUST_IN_A_BOX, str(path)], capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("pyevtx-rs ran for more than 30 s")
    assert done.returncode == 0, done.stderr.strip().splitlines()[:1]
    assert done.stdout.split() == ["0", "1"]


def test_python_evtx_rendering_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last fallback, python-evtx's renderer, stops after a bounded number of nested renders too."""
    from evtrack.sources.binxml.values import Unsupported
    from evtrack.sources.python_evtx import fallback, reader

    def unsupported(*args: object) -> RawEvent:
        raise Unsupported("forced")

    monkeypatch.setattr(reader, "fast_event", unsupported)
    monkeypatch.setattr(fallback, "tree_event", unsupported)
    path = tmp_path / "bomb.evtx"
    path.write_bytes(evtx_file([_bomb_record(2, 30)]))
    started = time.perf_counter()
    stats = FileStats(path)
    assert list(read_python_evtx(path, stats, plan=PLAN)) == []
    assert stats.skipped == 1 and "render" in stats.issues[0].reason
    assert time.perf_counter() - started < 10


def _write(tmp_path: Path, text: str | bytes, name: str = "export.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _xml(path: Path) -> tuple[list[RawEvent], FileStats]:
    stats = FileStats(path)
    return list(read_xml(path, stats, plan=PLAN)), stats


def test_billion_laughs_is_refused_before_any_expansion(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY l{i + 1} "{f"&l{i};" * 10}">' for i in range(9))
    path = _write(tmp_path, f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{entities}]><Events>'
                  + logon_4624(10).replace("alice", "&l9;") + "</Events>")
    started = time.perf_counter()
    events, stats = _xml(path)
    assert events == [] and stats.records == 0
    assert [issue.reason for issue in stats.issues] == [
        "refused XML: a DTD (document type declaration) is not allowed in an event export; entity expansion is "
        "never performed"
    ]
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE Event [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE Event SYSTEM "http://127.0.0.1:9/evil.dtd">',
    '<!DOCTYPE Event [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>',
])  # fmt: skip
@pytest.mark.parametrize("where", ["start", "after-comment", "after-event"])
def test_external_entities_are_never_resolved(doctype: str, where: str, tmp_path: Path) -> None:
    event = logon_4624(10).replace("alice", "&xxe;")
    text = {"start": doctype + event, "after-comment": "<!-- x -->" + doctype + event,
            "after-event": logon_4624(10) + doctype + event}[where]  # fmt: skip
    events, stats = _xml(_write(tmp_path, text))
    assert all("root:" not in str(event.data) for event in events)
    assert len(events) <= 1 and stats.issues and stats.issues[0].where == "file"
    assert stats.issues[0].reason.startswith(("refused XML", "malformed XML"))


def test_deep_nesting_is_refused_with_the_events_before_it_kept(tmp_path: Path) -> None:
    for inside in (True, False):
        deep = "<a>" * 100_000 + "</a>" * 100_000
        text = logon_4624(10) + (logon_4624(10).replace("</EventData>", deep + "</EventData>") if inside else deep)
        events, stats = _xml(_write(tmp_path, text))
        assert len(events) == stats.records == 1
        refusal = f"refused XML: elements nested deeper than {MAX_DEPTH} levels"
        assert [issue.reason for issue in stats.issues] == [refusal]


def test_huge_event_is_skipped_and_counted_and_the_next_is_read(tmp_path: Path) -> None:
    huge = logon_4624(10).replace("alice", "&amp;x\n" * 400_000)  # 400k text pieces: quadratic if concatenated
    text = logon_4624(10, record_id=1) + huge + logon_4624(10, record_id=3)
    started = time.perf_counter()
    events, stats = _xml(_write(tmp_path, text))
    assert [event.record_id for event in events] == [1, 3]
    assert [(issue.where, issue.skipped) for issue in stats.issues] == [("event 2", 1)]
    assert time.perf_counter() - started < 10


def test_many_small_text_pieces_are_joined_in_linear_time(tmp_path: Path) -> None:
    user = "a&amp;\n" * 100_000  # 700k characters, under the event limit, in 200k pieces
    started = time.perf_counter()
    events, stats = _xml(_write(tmp_path, logon_4624(10, user=user).replace("&amp;amp;", "&amp;")))
    assert stats.issues == [] and len(events) == 1
    assert events[0].data["TargetUserName"] == "a&\n" * 100_000
    assert time.perf_counter() - started < 5


def test_huge_attribute_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, logon_4624(10, record_id=1) + '<Event a="' + "A" * (20 << 20) + '"/>')
    started = time.perf_counter()
    events, stats = _xml(path)
    assert len(events) == 1
    assert stats.issues[0].reason.startswith("refused XML: a single tag")
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize(("content", "reason"), [
    (logon_4624(10).encode() + b"\xff\xfe" + logon_4624(10).encode(), "not utf-8 text"),
    (b"\xff\xfe" + logon_4624(10).encode("utf-16-le") + b"\x00\xd8" + "<Event/>".encode("utf-16-le"),
     "not utf-16 text"),
    (b"\xff\xfe" + logon_4624(10).encode("utf-16-le") + b"<", "not utf-16 text"),
    (logon_4624(10).encode() + logon_4624(10).encode()[:-30], "malformed XML"),
    (logon_4624(10).encode() + b"&undefined;", "malformed XML"),
    (logon_4624(10).replace("<EventID>4624", "<EventID>99999999").encode(), "corrupt event: EventID"),
    (logon_4624(10, record_id=2**64).encode(), "corrupt event: EventRecordID"),
])  # fmt: skip
def test_bad_text_keeps_what_came_before(content: bytes, reason: str, tmp_path: Path) -> None:
    events, stats = _xml(_write(tmp_path, content))
    assert len(events) == stats.records
    assert [issue.reason[: len(reason)] for issue in stats.issues] == [reason]
    assert stats.records + stats.skipped >= 1


def test_unreadable_xml_file_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        list(read_xml(tmp_path / "missing.xml", FileStats(tmp_path / "missing.xml"), plan=PLAN))


def test_pyevtx_rs_never_sees_an_exponential_template(tmp_path: Path) -> None:
    """The default engine refuses the crafted chunk before pyevtx-rs expands it (as the test above shows)."""
    from evtrack.reading import read_file
    from evtrack.sources.guard import REFUSED, explosive_chunks

    path = tmp_path / "bomb.evtx"
    path.write_bytes(evtx_file([_bomb_record(2, 30)]))
    assert explosive_chunks(path) == [0]
    started = time.perf_counter()
    result = read_file(path)
    assert time.perf_counter() - started < 10
    assert [(issue.where, issue.reason) for issue in result.stats.issues] == [("chunk 0", REFUSED)]
    assert result.stats.records == 0


def test_the_guard_passes_every_real_and_generated_log(tmp_path: Path) -> None:
    from evtrack.sources.guard import explosive_chunks
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=4, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=6)
    files = sorted(tmp_path.glob("*.evtx")) + (sorted(SHARED.glob("*.evtx")) if SHARED.is_dir() else [])
    assert files and all(explosive_chunks(path) == [] for path in files)


def test_the_guard_parses_templates_whatever_type_the_token_declares(tmp_path: Path) -> None:
    """A bomb whose tokens claim a string type but whose values are BinXML: pyevtx-rs expands it all the same."""
    from evtrack.sources.guard import explosive_chunks

    path = tmp_path / "disguised.evtx"
    path.write_bytes(evtx_file([_bomb_record(2, 30).replace(b"\x0d\x00\x00\x21", b"\x0d\x00\x00\x01")]))
    assert explosive_chunks(path) == [0]


def test_the_guard_survives_a_truncated_chunk(tmp_path: Path) -> None:
    """Bug (atheris): a template offset past the end of a truncated last chunk raised struct.error."""
    from evtrack.reading import read_file
    from evtrack.sources.guard import REFUSED, explosive_chunks

    whole = evtx_file([_bomb_record(2, 3)])
    truncated = "truncated chunk ({:,} of 65,536 bytes): the file was cut short"
    for cut, first_issue in ((0x1000 + 0x200 + 40, truncated.format(0x228)), (0x1000 + 0x220, truncated.format(0x220)),
                             (0x1000 + 0x300, REFUSED)):  # cut after the chunk's records (free space 0x2bb): no loss
        path = tmp_path / f"cut-{cut}.evtx"
        path.write_bytes(whole[:cut])
        explosive_chunks(path)
        # no record is whole: a failed file naming the chunk (it used to pass as an empty log)
        assert read_file(path).error == f"no record could be read: chunk 0: {first_issue}"
