"""``query user /server:HOST`` (quser) snapshots: the user sessions on one session host at one instant.

The layout (English, the same offsets in German; French moves LOGON TIME one column right)::

     USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME
    >administrator         rdp-tcp#2           1  Active          .  3/25/2021 9:27 AM
     ben bolen                                 2  Disc      1+00:53  9/16/2026 9:33 AM

* ``>`` marks the caller's own session; SESSIONNAME is blank for a disconnected session; a user name may hold a
  space and may overflow its column. Rows are therefore read from the right (ID, STATE, IDLE TIME, LOGON TIME
  are single tokens; LOGON TIME is a date and a time), and what is left is split at the header's SESSIONNAME
  offset -- where a long user name runs past it, at the first space after it.
* IDLE TIME: ``none`` (``aucun``, ``Kein``), ``.``, minutes, ``H:MM`` or ``D+HH:MM``. LOGON TIME follows the
  host's regional settings, without seconds (``1/14/2026 9:05 AM``, ``14.01.2026 09:05``, ``14/01/2026 09:05``).
* Localised headers and states. Verified in public samples of real output: English (header, ``Active``,
  ``Disc``, ``none``, ``.``), French (header ``UTILISATEUR SESSION ID ÉTAT TEMPS INACT TEMPS SESSION``, ``Actif``,
  ``aucun``), German (header ``BENUTZERNAME SITZUNGSNAME ID STATUS LEERLAUF ANMELDEZEIT``, ``Aktiv``, ``Kein``;
  ``Getr.`` for disconnected in several admin scripts). French ``Déco`` comes from the domain notes. A state that
  is not known is still a user's session (query user lists only sessions with a user) and an issue names it.
* The console code page: ``quser > file`` in cmd writes OEM bytes (cp850, cp437); a tool that read them in
  another code page turns ``ÉTAT`` into ``\\x90TAT``, ``╔TAT`` or ``TAT``. The bytes are decoded as UTF-16 (BOM or
  NUL layout), else UTF-8, else cp850; if the header then does not read exactly, the text is re-decoded or
  repaired where that makes it exact, else read with garbled letters tolerated and an issue said.
* With nobody logged on, quser prints ``No User exists for *`` (to stderr) and exits 1: a poll with no sessions.
  Its French and German forms were not found in any public sample; such a file is refused rather than guessed.

User names carry no domain. The host and the poll time come from the file name ``quser_<HOST>_<yyyyMMddTHHmmssZ>.txt``
(what ``evtrack poll`` writes); without a stamp the file's modification time is the poll time (an issue says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evtrack.errors import SourceError
from evtrack.sources.base import CoverageSink, FileStats, RawEvent, Reader, ReadPlan
from evtrack.sources.snapshots import (
    POLL,
    QUERY_USER_CHANNEL,
    QUERY_USER_PROVIDER,
    SESSION_CREATED,
    SESSION_LISTED,
    STAMP_PATTERN,
    DateValue,
    LocalStamp,
    SnapshotName,
    accent_pattern,
    after_its_poll,
    assumed_poll_time,
    choose_order,
    decode_text,
    head_text,
    local_to_us,
    local_zone,
    parse_local,
    parse_name,
    read_snapshot,
    reencode,
    sniff_encoding,
)

NAME = "query-user"
FILE_PREFIX = "quser"


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    words: tuple[str, ...]
    """The header's words, in order; the second is the SESSIONNAME column."""
    session_states: tuple[str, ...]
    """States of a user's session, as this language writes them (verified ones only)."""
    other_states: tuple[str, ...]
    """States that are no user's session."""
    none_words: tuple[str, ...]
    """IDLE TIME of a session without idle time."""

    def header(self, *, tolerant: bool) -> re.Pattern[str]:
        parts = [(accent_pattern(word) if tolerant else re.escape(word)).replace(r"\ ", r"\s+")
                 for word in self.words]
        parts[0] = f"(?P<user>{parts[0]})"
        parts[1] = f"(?P<session>{parts[1]})"
        return re.compile(r"^\s*" + r"\s+".join(parts) + r"\s*$", re.IGNORECASE)


LANGUAGES = (
    Language("en", ("USERNAME", "SESSIONNAME", "ID", "STATE", "IDLE TIME", "LOGON TIME"),
             ("Active", "Disc", "Conn", "ConnQ", "Shadow", "Idle"), ("Listen", "Reset", "Down", "Init"),
             ("none",)),
    Language("fr", ("UTILISATEUR", "SESSION", "ID", "ÉTAT", "TEMPS INACT", "TEMPS SESSION"),
             ("Actif", "Déco"), (), ("aucun",)),
    Language("de", ("BENUTZERNAME", "SITZUNGSNAME", "ID", "STATUS", "LEERLAUF", "ANMELDEZEIT"),
             ("Aktiv", "Getr."), (), ("Kein", "keine")),
)
#: "TEMPS INACT." is also seen (a shorter column label with its abbreviation point).
_FR_DOT = Language("fr", ("UTILISATEUR", "SESSION", "ID", "ÉTAT", "TEMPS INACT.", "TEMPS SESSION"),
                   LANGUAGES[1].session_states, (), LANGUAGES[1].none_words)
_EXACT = tuple((lang, lang.header(tolerant=False)) for lang in (*LANGUAGES, _FR_DOT))
_TOLERANT = tuple((lang, lang.header(tolerant=True)) for lang in (*LANGUAGES, _FR_DOT))
NO_USER = re.compile(r"^\s*No User exists for (?P<who>\S.*?)\s*$", re.IGNORECASE)

_DATE = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\.?,?\s+\d{1,2}[:.]\d{2}(?:[:.]\d{2})?(?:\s*[AaPp]\.?\s?[Mm]\.?)?"
_ROW = re.compile(rf"^(?P<left>.*)\s(?P<id>\d+)\s+(?P<state>\S+)(?:\s+(?P<idle>\S+))?\s+(?P<logon>{_DATE})\s*$")
_IDLE = re.compile(r"^(?:\.|\d+|\d+:\d{2}|\d+\+\d{1,2}:\d{2})$")
#: Where the console code page may have garbled the text: (read as, should have been) pairs to undo.
_REPAIRS = (("cp1252", "cp850"), ("cp850", "cp1252"), ("cp1252", "utf-8"), ("cp850", "utf-8"), ("cp437", "utf-8"))
_DEFAULT_PLAN = ReadPlan()


def _state_patterns(states: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(accent_pattern(state), re.IGNORECASE) for state in states)


_SESSION_STATES = _state_patterns(tuple(s for lang in LANGUAGES for s in lang.session_states))
_OTHER_STATES = _state_patterns(tuple(s for lang in LANGUAGES for s in lang.other_states))
_NONE_WORDS = frozenset(word.lower() for lang in LANGUAGES for word in lang.none_words)


@dataclass(frozen=True, slots=True)
class _Header:
    line: int
    """1-based."""
    user: int
    """Offset of the USERNAME column."""
    session: int
    """Offset of the SESSIONNAME column."""
    language: Language
    exact: bool


def _find_header(lines: list[str]) -> _Header | None:
    """The header among the first lines (tools like PsExec print a banner before it): read exactly, else with
    garbled accented letters tolerated."""
    for number, line in enumerate(lines[:12], start=1):
        for exact, table in ((True, _EXACT), (False, _TOLERANT)):
            for language, pattern in table:
                match = pattern.match(line)
                if match is not None:
                    return _Header(number, match.start("user"), match.start("session"), language, exact)
    return None


def looks_like(head: bytes, path: Path) -> bool:
    """``query user`` output: its header (English, French or German, garbled letters tolerated) among the first
    lines, or ``No User exists for *``."""
    del path
    lines = head_text(head).splitlines()
    first = next((line for line in lines if line.strip()), "")
    return bool(NO_USER.match(first)) or _find_header(lines) is not None


def claims(head: bytes, path: Path) -> bool:
    """Whether a file is named as a poll (``quser_<HOST>_<yyyyMMddTHHmmssZ>.txt``) although it holds no query user
    output: what ``quser`` printed when it failed (``Error [5]:Access is denied.``), or nothing. Its reader says
    what it holds: a failed poll, never a file a folder scan ignores."""
    del head
    return bool(_POLL_NAME_RE.fullmatch(path.name))


_POLL_NAME_RE = re.compile(rf"{FILE_PREFIX}_.+_{STAMP_PATTERN}\.txt", re.IGNORECASE)


def _decoded(raw: bytes, stats: FileStats) -> tuple[list[str], _Header | None]:
    """The file's lines and header: decoded so that the header reads exactly where some decoding or repair makes
    it so; else as first decoded, with an issue when the header only matches with garbled letters."""
    decoded = decode_text(raw, "cp850")
    if decoded.damaged:
        stats.add_issue("file", f"bytes that are not {decoded.encoding} were replaced by U+FFFD", 0)
    first = decoded.text.splitlines()
    header = _find_header(first)
    if header is None or header.exact:
        return first, header
    texts: list[tuple[str, str]] = []
    if sniff_encoding(raw) is None:
        for encoding in ("cp850", "cp1252", "cp437"):
            try:
                texts.append((raw.decode(encoding), f"read as {encoding}"))
            except UnicodeDecodeError:
                continue
    for wrong, right in _REPAIRS:
        back = reencode(decoded.text, wrong)
        if back is not None:
            try:
                texts.append((back.decode(right), f"repaired ({right} text that was read as {wrong})"))
            except UnicodeDecodeError:
                continue
    for text, how in texts:
        lines = text.splitlines()
        found = _find_header(lines)
        if found is not None and found.exact:
            stats.add_issue("file", f"the console code page garbled the text: {how}", 0)
            return lines, found
    stats.add_issue("file", "the console code page garbled accented letters (the header reads "
                            f"{first[header.line - 1].strip()!r}): user names with accented letters may be wrong", 0)
    return first, header


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    user: str
    session_name: str
    session_id: str
    state: str
    logon_text: str
    logon: LocalStamp


def _rows(lines: list[str], header: _Header, stats: FileStats) -> list[_Row]:
    rows: list[_Row] = []
    for number, text in enumerate(lines[header.line:], start=header.line + 1):
        line = text.rstrip()
        if not line.strip():
            continue
        if line.startswith(">"):
            line = " " + line[1:]
        match = _ROW.match(line)
        if match is None:
            stats.add_issue(f"line {number}", f"not a query user row ({line.strip()[:60]!r}): skipped", 1)
            continue
        user, session_name = _user(match.group("left"), header)
        stats.records += 1
        stats.per_channel[QUERY_USER_CHANNEL] += 1
        state = match.group("state")
        if not user or any(p.fullmatch(state) for p in _OTHER_STATES):
            continue  # a listener or a session being torn down: no user's session
        if not any(p.fullmatch(state) for p in _SESSION_STATES):
            stats.add_issue(f"line {number}", f"state {state!r} is not one evtrack knows: read as a user's session "
                                              "(query user lists sessions that have a user)", 0)
        idle = match.group("idle")
        if idle is not None and idle.lower() not in _NONE_WORDS and not _IDLE.match(idle):
            stats.add_issue(f"line {number}", f"IDLE TIME {idle!r} is not a known idle format", 0)
        logon = parse_local(match.group("logon"))
        if logon is None or not logon.valid():
            stats.records -= 1
            stats.add_issue(f"line {number}", f"LOGON TIME {match.group('logon')!r} is not a date and time: "
                                              "row skipped", 1)
            continue
        rows.append(_Row(number, user, session_name, match.group("id"), state, match.group("logon").strip(), logon))
    return rows


def _user(left: str, header: _Header) -> tuple[str, str]:
    """The user name and the session name in what precedes the ID: the user up to the SESSIONNAME column, or past
    it to the first space when a long name overflows; the session name after it (blank when disconnected)."""
    cut = header.session
    if len(left) > cut and cut > 0 and not left[cut - 1].isspace():
        space = re.search(r"\s", left[cut:])
        cut = len(left) if space is None else cut + space.start()
    start = header.user if header.user < cut else 0
    return left[start:cut].strip(), left[cut:].strip()


def read(path: Path, stats: FileStats, *, plan: ReadPlan = _DEFAULT_PLAN, verify_checksums: bool = True,
         coverage: CoverageSink | None = None) -> Iterator[RawEvent]:
    """The poll and the user sessions of one ``query user`` snapshot. Reads the whole file first (snapshots are
    small): what makes the file unusable is raised before any record is yielded."""
    del verify_checksums
    stats.engine = NAME
    name = parse_name(path, FILE_PREFIX)
    if name.host is None:
        raise SourceError(path, "a query user snapshot does not name its server: name the file "
                                f"{FILE_PREFIX}_<HOST>_<yyyyMMddTHHmmssZ>.txt (as evtrack poll does), e.g. "
                                f"{FILE_PREFIX}_RDSH01_20260114T091000Z.txt")
    host = name.host
    raw = read_snapshot(path)
    if not raw.strip():
        raise SourceError(path, "the file is empty: a query user snapshot holds at least its header or "
                                "'No User exists for *'")
    lines, header = _decoded(raw, stats)
    how_to_fix = f"name the file {FILE_PREFIX}_{host}_<yyyyMMddTHHmmssZ>.txt"
    if header is None:
        first = next((line.strip() for line in lines if line.strip()), "")
        no_user = NO_USER.match(first)
        if no_user is None:
            raise SourceError(path, f"not query user output evtrack can read (it starts {first[:60]!r}): a failed "
                                    "query (Error [5]: Access is denied, ...) is no poll, and 'No User exists' is "
                                    "read in English only")
        if no_user.group("who") != "*":
            raise SourceError(path, f"a query for user {no_user.group('who')!r}, not for all sessions: no poll")
        poll_us = _poll_time(path, name, stats, how_to_fix)
        yield _poll(poll_us, host, stats, coverage)
        return
    poll_us = _poll_time(path, name, stats, how_to_fix)
    rows = _rows(lines, header, stats)
    times: dict[int, int] = {}
    late: set[int] = set()
    if rows:
        zone = local_zone(plan.local_zone, path)
        order = choose_order([DateValue(r.logon, poll_us, f"line {r.line} LOGON TIME") for r in rows],
                             plan.culture, zone, path, stats)
        for row in rows:
            moment = row.logon.moment(order)
            if moment is None:
                stats.records -= 1
                stats.add_issue(f"line {row.line}", f"LOGON TIME {row.logon_text!r} is no date read {order.value}: "
                                                    "row skipped", 1)
                continue
            times[row.line], uncertain = local_to_us(moment, zone)
            if uncertain:
                stats.add_issue(f"line {row.line}", f"LOGON TIME {row.logon_text!r} {uncertain}", 0)
            if after_its_poll(times[row.line], poll_us, f"LOGON TIME {row.logon_text!r}", f"line {row.line}", stats):
                late.add(row.line)
                del times[row.line]
    yield _poll(poll_us, host, stats, coverage)
    for row in rows:
        if row.line not in times and row.line not in late:
            continue
        record_id = int(row.session_id)
        data: dict[str, str | None] = {
            "UserName": row.user,
            "SessionId": row.session_id,
            "SessionState": row.state,
            "CreateTime": row.logon_text,
            "HostServer": host,
            "PolledBy": host,
        }
        if row.session_name:  # the catalogue tells the console session (not RDP) by it; blank when disconnected
            data["SessionName"] = row.session_name
        yield RawEvent(poll_us, SESSION_LISTED, record_id, QUERY_USER_CHANNEL, host, QUERY_USER_PROVIDER, data)
        if row.line not in times:
            continue
        yield RawEvent(times[row.line], SESSION_CREATED, record_id, QUERY_USER_CHANNEL, host, QUERY_USER_PROVIDER,
                       dict(data))


def _poll_time(path: Path, name: SnapshotName, stats: FileStats, how_to_fix: str) -> int:
    if name.stamp_us is not None:
        return name.stamp_us
    return assumed_poll_time(path, name, stats, why="the file name has no poll stamp", stamp_is_assumption=False,
                             how_to_fix=how_to_fix)


def _poll(time_us: int, host: str, stats: FileStats, coverage: CoverageSink | None) -> RawEvent:
    event = RawEvent(time_us, POLL, None, QUERY_USER_CHANNEL, host, QUERY_USER_PROVIDER, {})
    stats.records += 1
    stats.per_channel[QUERY_USER_CHANNEL] += 1
    if coverage is not None:
        coverage.add(event)
    return event


READER = Reader(name=NAME, read=read, fills_coverage=True)
