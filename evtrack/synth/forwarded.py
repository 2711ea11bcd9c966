"""A Windows Event Forwarding collector's ``ForwardedEvents`` log: several hosts' records in one file.

Each forwarded record keeps its origin's ``System/Computer``, ``System/Channel`` and ``System/EventRecordID``
(numbered per origin host and log); the collector's .evtx numbers its record headers in its own sequence. Records
arrive in batches per source (a subscription's delivery interval: 15 minutes in "Normal" mode, 30 seconds in
"Minimize latency"), so hosts interleave batch by batch, each host's records in order. A subscription in
"RenderedText" format adds ``RenderingInfo`` (the message in the forwarder's language) after the payload; in the
XML export it follows EventData/UserData. This writer puts RenderingInfo into the XML only: the .evtx holds the
raw events (a subscription in "Events" format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from evtrack.synth.binxml import to_filetime
from evtrack.synth.evtx_writer import EventSpec, EvtxWriter
from evtrack.synth.xml_writer import Rendering, write_xml

#: The first line of each message in English, and its task name, for the events the synth writes.
_MESSAGES: dict[tuple[str, int], tuple[str, str]] = {
    ("Security", 4624): ("An account was successfully logged on.", "Logon"),
    ("Security", 4634): ("An account was logged off.", "Logoff"),
    ("Security", 4647): ("User initiated logoff:", "Logoff"),
    ("Security", 4672): ("Special privileges assigned to new logon.", "Special Logon"),
    ("Security", 4778): ("A session was reconnected to a Window Station.", "Other Logon/Logoff Events"),
    ("Security", 4779): ("A session was disconnected from a Window Station.", "Other Logon/Logoff Events"),
    ("Security", 1102): ("The audit log was cleared.", "Log clear"),
}
_LSM_MESSAGES = {21: "Session logon succeeded:", 22: "Shell start notification received:",
                 23: "Session logoff succeeded:", 24: "Session has been disconnected:",
                 25: "Session reconnection succeeded:"}
_GATEWAY_MESSAGES = {302: "The user \"{Username}\", on client computer \"{IpAddress}\", connected to resource "
                          "\"{Resource}\".",
                     303: "The user \"{Username}\", on client computer \"{IpAddress}\", disconnected from the "
                          "following network resource: \"{Resource}\"."}

_TICKS_PER_SECOND = 10_000_000


def english(spec: EventSpec) -> Rendering:
    """RenderingInfo in English for a record, roughly as an en-US forwarder writes it: a first line, then the
    payload fields one per line (what a reader of the message would be tempted to parse)."""
    etype = spec.etype
    values = {name: "" if value is None else str(value) for (name, _), value in
              zip(etype.fields, spec.values, strict=False)}
    channel = etype.channel
    keywords: tuple[str, ...]
    if channel == "Security":
        first, task = _MESSAGES.get((channel, etype.event_id), ("", ""))
        provider, keywords = "Microsoft Windows security auditing.", ("Audit Success",)
    elif etype.event_id in _LSM_MESSAGES and "LocalSessionManager" in channel:
        first, task = "Remote Desktop Services: " + _LSM_MESSAGES[etype.event_id], ""
        provider, keywords = etype.provider.name, ()
    elif etype.event_id in _GATEWAY_MESSAGES and "Gateway" in channel:
        first = _GATEWAY_MESSAGES[etype.event_id].format_map(values)
        task, provider, keywords = "", etype.provider.name, ("Audit Success",) if etype.event_id == 300 else ()
    else:
        first, task, provider, keywords = "", "", etype.provider.name, ()
    lines = [first, "", *(f"\t{name}:\t\t{value}" for name, value in values.items())]
    return Rendering("\r\n".join(lines), task=task, channel=channel, provider=provider, keywords=keywords)


def arrival_order(streams: Sequence[Sequence[EventSpec]], batch: timedelta = timedelta(minutes=15)
                  ) -> list[EventSpec]:
    """The records of several sources (each in the order its log holds them) in the order a collector receives
    them: each source sends what it logged every ``batch``, the sources' intervals offset from one another."""
    step = int(batch.total_seconds() * _TICKS_PER_SECOND)
    keyed = []
    for source, stream in enumerate(streams):
        phase = step * source // max(len(streams), 1)
        for position, spec in enumerate(stream):
            ticks = to_filetime(spec.time)
            arrival = -(-(ticks - phase) // step) * step + phase if step else ticks
            keyed.append((arrival, source, position, spec))
    keyed.sort(key=lambda item: item[:3])
    return [spec for *_, spec in keyed]


def write_forwarded(path: Path | str, specs: Sequence[EventSpec], shape: str = "evtx",
                    rendering: Callable[[EventSpec], Rendering | None] | None = english) -> Path:
    """Write records (in arrival order: :func:`arrival_order`) as a collector's ForwardedEvents log: ``shape``
    ``evtx`` (``wevtutil epl ForwardedEvents``: record headers numbered in the file's own sequence) or ``xml``
    (``wevtutil qe ForwardedEvents /f:xml``, each event with the RenderingInfo ``rendering`` gives; None: none)."""
    target = Path(path)
    if shape == "xml":
        return write_xml(target, [(spec, rendering(spec) if rendering else None) for spec in specs])
    if shape != "evtx":
        raise ValueError(f"shape must be evtx or xml, not {shape!r}")
    with EvtxWriter(target, renumber=True) as writer:
        writer.add_all(specs)
    return target
