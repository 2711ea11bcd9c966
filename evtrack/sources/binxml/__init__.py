"""BinXML, the binary XML of .evtx records, decoded with ``struct`` only: shared by the python-evtx engine
(:mod:`evtrack.sources.python_evtx`) and the guard that keeps crafted chunks away from pyevtx-rs
(:mod:`evtrack.sources.guard`).

Format reference: Joachim Metz, "Windows XML Event Log (EVTX) format" (libevtx documentation),
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc
(section "Binary XML"). :mod:`.values` turns substitution values into text; :mod:`.tree` evaluates a token
stream into a small element tree.
"""
