"""The store's schema: its tables, the migrations that bring an older store up to date, and the packing of
integer columns. :mod:`evtrack.store` is the store itself.

``PRAGMA user_version`` is the schema version; ``migrate`` applies ``MIGRATIONS[n]`` (n -> n + 1) one transaction at
a time, and re-checks the clocks of files ingested before schema 3.
"""

from __future__ import annotations

import sqlite3
import sys
import zlib
from array import array
from collections.abc import Sequence
from datetime import datetime, timezone
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evtrack.coverage import Misdated

#: ``PRAGMA application_id``: "EvTr". Tells an evtrack store from any other SQLite database.
APPLICATION_ID = 0x45765472
SCHEMA_VERSION = 4
#: Stands in for a missing record id or time in the identity index (SQLite's UNIQUE lets NULLs repeat).
MISSING = -(2**63)


#: Schema steps: ``MIGRATIONS[n]`` takes a store from version n to n + 1. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            kind TEXT NOT NULL,
            engine TEXT NOT NULL,
            reader TEXT NOT NULL,
            first_us INTEGER,
            last_us INTEGER,
            records INTEGER NOT NULL,
            events INTEGER NOT NULL,
            events_added INTEGER NOT NULL,
            skipped INTEGER NOT NULL,
            issues TEXT NOT NULL,
            ingested_at TEXT NOT NULL
        )""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            time INTEGER, host TEXT, channel TEXT, provider TEXT, event_id INTEGER, record_id INTEGER, kind TEXT,
            logon_type INTEGER, user TEXT, domain TEXT, sid TEXT, address TEXT, client_name TEXT,
            session_id INTEGER, logon_id TEXT, session_name TEXT, elevated INTEGER, rdp INTEGER, reason TEXT,
            detail TEXT
        )""",
        f"""CREATE UNIQUE INDEX events_identity ON events
            (host, channel, ifnull(record_id, {MISSING}), ifnull(time, {MISSING}))""",
        "CREATE INDEX events_time ON events(time)",
        "CREATE INDEX events_file ON events(file_id)",
        """CREATE TABLE spans (
            file_id INTEGER NOT NULL REFERENCES files(id),
            host TEXT NOT NULL,
            channel TEXT NOT NULL,
            first_us INTEGER,
            last_us INTEGER,
            records INTEGER NOT NULL,
            first_record_id INTEGER,
            last_record_id INTEGER,
            gaps INTEGER NOT NULL,
            missing_records INTEGER NOT NULL,
            untimed INTEGER NOT NULL,
            envelope_first_us INTEGER,
            envelope_last_us INTEGER,
            record_ids BLOB NOT NULL,
            record_times BLOB NOT NULL,
            no_id_times BLOB NOT NULL,
            PRIMARY KEY (file_id, host, channel)
        )""",
        """CREATE TABLE clears (
            file_id INTEGER NOT NULL REFERENCES files(id),
            host TEXT NOT NULL,
            channel TEXT NOT NULL,
            time_us INTEGER NOT NULL,
            PRIMARY KEY (file_id, host, channel, time_us)
        )""",
        """CREATE TABLE reports (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            saved_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            scope TEXT NOT NULL,
            window_spec TEXT NOT NULL,
            tz TEXT NOT NULL,
            period_start TEXT,
            period_end TEXT,
            installed INTEGER,
            estimated INTEGER,
            verdict TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    (  # 1 -> 2: a file's coverage can be several segments (a skipped chunk leaves a hole)
        "ALTER TABLE spans ADD COLUMN segments BLOB",
    ),
    (  # 2 -> 3: records whose time contradicts their neighbours (record id, time, placed time), flat
        "ALTER TABLE spans ADD COLUMN misdated BLOB",
        "ALTER TABLE spans ADD COLUMN kdc INTEGER NOT NULL DEFAULT 0",  # the log holds Kerberos KDC events
    ),
    (  # 3 -> 4: inputs an ingest could not read, until one reads them (a report from the store is a lower bound)
        """CREATE TABLE failed_files (
            path TEXT PRIMARY KEY,
            sha256 TEXT,
            size INTEGER,
            error TEXT NOT NULL,
            failed_at TEXT NOT NULL
        )""",
    ),
)


def unpack_segments(packed: bytes | None) -> tuple[tuple[int, int], ...]:
    flat = unpack(packed) if packed else []
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def unpack_misdated(packed: bytes | None) -> tuple[Misdated, ...]:
    from evtrack.coverage import Misdated

    values = unpack(packed) if packed else []
    return tuple(Misdated(*values[i:i + 3]) for i in range(0, len(values), 3))


def pack(values: Sequence[int]) -> bytes:
    """Sorted-ish integers as zlib'd little-endian int64 deltas (record ids step by 1: a few bytes per 1000)."""
    deltas = array("q", values[:1])
    deltas.extend(b - a for a, b in pairwise(values))
    if sys.byteorder == "big":
        deltas.byteswap()
    return zlib.compress(deltas.tobytes(), 6)


def unpack(blob: bytes) -> list[int]:
    deltas = array("q")
    deltas.frombytes(zlib.decompress(blob))
    if sys.byteorder == "big":
        deltas.byteswap()
    return list(accumulate(deltas))


# -- helpers --------------------------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def recheck_clocks(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: files ingested before evtrack checked clocks get their misdated records found now, from the
    (record id, time) pairs the store kept, exactly as a new ingest would (record order is id order): their times
    are placed between their neighbours and the covered segments no longer reach out to them."""
    import numpy as np

    from evtrack.coverage import misdated, place_misdated

    rows = db.execute("SELECT file_id, host, channel, record_ids, record_times, segments FROM spans").fetchall()
    for file_id, host, channel, ids_blob, times_blob, packed in rows:
        ids = np.array(unpack(ids_blob), dtype=np.int64)
        times = np.array(unpack(times_blob), dtype=np.int64)
        if len(times) < 3:
            continue
        mask = misdated(times)
        if not mask.any():
            continue
        placed = place_misdated(times, mask)
        lo, hi = int(placed.min()), int(placed.max())
        segments = [(max(a, lo), min(b, hi)) for a, b in unpack_segments(packed) if a <= hi and b >= lo] or [(lo, hi)]
        wrong = [value for i in np.nonzero(mask)[0].tolist() for value in (int(ids[i]), int(times[i]), int(placed[i]))]
        db.execute(
            "UPDATE spans SET record_times = ?, misdated = ?, segments = ?, envelope_first_us = ?, "
            "envelope_last_us = ?, first_us = ?, last_us = ? WHERE file_id = ? AND host = ? AND channel = ?",
            (pack(placed.tolist()), pack(wrong), pack([t for segment in segments for t in segment]), lo, hi, lo,
             hi, file_id, host, channel),
        )


def migrate(db: sqlite3.Connection) -> int:
    """Bring the store's schema to :data:`SCHEMA_VERSION`, one transaction per step; returns the new version."""
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # re-read: another process may have won
            if version >= SCHEMA_VERSION:
                db.execute("COMMIT")
                return int(version)
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            if version == 2:
                recheck_clocks(db)
            if version == 0:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (iso_text(now()),))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version + 1),))
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
