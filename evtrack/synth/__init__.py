"""Synthetic evidence: a pure-Python .evtx writer and a seeded RDS session-host fleet with ground truth.

``write_sample`` writes a fleet's Security / LocalSessionManager / RemoteConnectionManager logs and
``ground_truth.json``; ``EvtxWriter`` + ``EventSpec`` write arbitrary events, ``write_xml`` the same records as
``wevtutil`` XML, ``write_forwarded`` a WEF collector's ForwardedEvents log (see docs/synth.md).
"""

from __future__ import annotations

from evtrack.synth.binxml import VT
from evtrack.synth.evtx_writer import EventSpec, EventType, EvtxWriter, Provider, WriteStats
from evtrack.synth.forwarded import arrival_order, write_forwarded
from evtrack.synth.sample import SampleResult, write_sample
from evtrack.synth.xml_writer import Rendering, event_xml, write_xml

__all__ = ["VT", "EventSpec", "EventType", "EvtxWriter", "Provider", "Rendering", "SampleResult", "WriteStats",
           "arrival_order", "event_xml", "write_forwarded", "write_sample", "write_xml"]
