"""Synthetic evidence: a pure-Python .evtx writer and a seeded RDS session-host fleet with ground truth.

``write_sample`` writes a fleet's Security / LocalSessionManager / RemoteConnectionManager logs and
``ground_truth.json``; ``EvtxWriter`` + ``EventSpec`` write arbitrary events (see docs/synth.md).
"""

from __future__ import annotations

from evtrack.synth.binxml import VT
from evtrack.synth.evtx_writer import EventSpec, EventType, EvtxWriter, Provider, WriteStats
from evtrack.synth.sample import SampleResult, write_sample

__all__ = ["VT", "EventSpec", "EventType", "EvtxWriter", "Provider", "SampleResult", "WriteStats", "write_sample"]
