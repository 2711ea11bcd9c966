"""The pure-Python engine (``--engine python-evtx``): python-evtx (``Evtx``) for the slow path, ``struct`` for
the rest.

python-evtx renders every record to XML through a tree of node objects (about 12 ms per Security record) and,
through ``Evtx.records()``, only visits the chunks the file header names, which silently loses records in
"dirty" logs copied from a running system. This engine therefore:

- walks every 64 KiB chunk slot up to the end of the file and every record of a chunk like pyevtx-rs
  (:mod:`.reader`);
- never renders on the fast path (:mod:`.fast`): each template is turned into a plan (:mod:`.plans`), once per
  chunk, or taken from a cache of plans shared by all chunks and files when evaluating the template here would
  read the same bytes and names (:mod:`.chunk`); per template and sequence of substitution types, a *shape*
  says how each field reads. Payloads are decoded only for the read plan's
  :attr:`~evtrack.sources.base.ReadPlan.wanted_ids`, and only its
  :attr:`~evtrack.sources.base.ReadPlan.payload_keys` fields (as the pyevtx-rs engine does, so both give
  identical ``data``); plans cached across chunks and files are kept per set of payload keys;
- fills the coverage itself when given one (only wanted records are yielded) and, in a slim read, skips a
  repeated observation-only logon or logoff after decoding just its logon type and account (:mod:`.slim`);
  both are declared on :data:`READER`;
- records without a template instance (raw BinXML) or with an unexpected layout go through the generic BinXML
  evaluator (still ``struct`` only) and, failing that, through python-evtx's full XML rendering and
  :func:`evtrack.sources.xmlfile.event_from_xml` (:mod:`.fallback`); both count as ``stats.fallbacks``.

The BinXML decoding itself (value text exactly as pyevtx-rs writes it, the evaluator) is
:mod:`evtrack.sources.binxml`, shared with :mod:`evtrack.sources.guard`.
"""

from evtrack.sources.python_evtx.reader import ENGINE, READER, read_python_evtx

__all__ = ["ENGINE", "READER", "read_python_evtx"]
