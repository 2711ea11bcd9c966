"""Read .evtx files back with both parsers and normalise what they render, for the round-trip tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import evtx
from Evtx.Evtx import Evtx

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"


@dataclass
class Parsed:
    event_id: int
    record_id: int
    time: datetime
    computer: str
    channel: str
    fields: list[tuple[str, str]]


def _strip(tag: str) -> str:
    return tag.split("}", 1)[-1]


def parse_xml(text: str) -> Parsed:
    root = ET.fromstring(text)
    system = root.find(f"{NS}System")
    assert system is not None
    t = system.find(f"{NS}TimeCreated")
    assert t is not None
    stamp = t.attrib["SystemTime"].replace(" ", "T").replace("Z", "+00:00")
    fields: list[tuple[str, str]] = []
    for section in root:
        tag = _strip(section.tag)
        if tag == "EventData":
            fields = [(d.attrib.get("Name", ""), d.text or "") for d in section]
        elif tag == "UserData":
            inner = next(iter(section))
            fields = [(_strip(c.tag), c.text or "") for c in inner]
    return Parsed(
        event_id=int(system.findtext(f"{NS}EventID") or 0),
        record_id=int(system.findtext(f"{NS}EventRecordID") or 0),
        time=datetime.fromisoformat(stamp).astimezone(timezone.utc),
        computer=system.findtext(f"{NS}Computer") or "",
        channel=system.findtext(f"{NS}Channel") or "",
        fields=fields,
    )


def read_rs(path: Path) -> tuple[list[str], list[Exception]]:
    """Every record's XML from pyevtx-rs with checksum validation, and the errors it raised."""
    it = evtx.PyEvtxParser(str(path), validate_checksums=True).records()
    out: list[str] = []
    errors: list[Exception] = []
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except Exception as exc:  # pyevtx-rs raises per bad record/chunk and goes on
            errors.append(exc)
            if len(errors) > 1000:
                break
            continue
        out.append(rec["data"])
    return out, errors


def read_py(path: Path) -> tuple[list[str], int]:
    """Every record's XML from python-evtx over all chunks (include_inactive) and the number of bad chunks."""
    out: list[str] = []
    bad = 0
    with Evtx(str(path)) as fh:
        header = fh.get_file_header()
        assert header.verify(), "file header does not verify"
        for chunk in header.chunks(include_inactive=True):
            if not chunk.check_magic():
                continue
            if not chunk.verify():
                bad += 1
            for rec in chunk.records():
                out.append(rec.xml())
    return out, bad
