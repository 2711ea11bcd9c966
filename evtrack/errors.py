"""One exception root for evtrack, one subclass per stage, each saying where and what."""

from __future__ import annotations

from pathlib import Path


class EvtrackError(Exception):
    """Root of every error evtrack raises on purpose; the CLI turns it into a message and exit code 1."""


class SourceError(EvtrackError):
    """An input file that cannot be read at all (missing, unreadable, not an event log)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAnEventLog(SourceError):
    """A file whose content is no event log and that does not claim to be one (not named ``*.evtx``, no damaged
    .evtx header): noise when a folder scan finds it, an error when it was named."""


class ConfigError(EvtrackError):
    """A setting, flag or config file that is wrong."""


class StoreError(EvtrackError):
    """The report store cannot be used (not an evtrack store, locked, unknown id)."""
