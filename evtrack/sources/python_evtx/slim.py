"""A slim read's shortcut: skip a repeated observation-only logon or logoff after decoding just its logon type
and account (see :class:`Slim`)."""

from __future__ import annotations

from evtrack.sources.base import RawEvent, ReadPlan

#: The channel (lower case) and the logon and logoff events whose account fields (``Target*``, below) this
#: shortcut knows. Whether such a record is observation-only is the read plan's call
#: (:meth:`~evtrack.sources.base.ReadPlan.observation_only`); these only say where its account is.
LOGON_CHANNEL = "security"
LOGON_EVENTS = frozenset({4624, 4634})
#: The payload keys a slim read decides on: the logon type and the account.
SLIM_KEYS = frozenset({"LogonType", "TargetUserSid", "TargetUserName", "TargetDomainName"})
#: The data of a record a slim read skips (only counted, and given to the coverage).
SKIPPED: dict[str, str | None] = {}


def _logon_type(text: str | None) -> int | None:
    """The logon type as :func:`evtrack.events.normalise` reads it (``_int``: stripped, decimal or ``0x`` hex)."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


class Slim:
    """A slim read's memory of the accounts it has yielded in observation-only logons and logoffs.

    A Security 4624/4634 whose logon type makes it observation-only (``plan``'s
    :meth:`~evtrack.sources.base.ReadPlan.observation_only`) only lends (user, domain, SID, host) to identity
    linking: once one with the same host, channel and TargetUserSid/TargetUserName/TargetDomainName texts has been
    yielded, the next ones add nothing and are skipped (still counted and given to the coverage)."""

    __slots__ = ("accounts", "observation_only")

    def __init__(self, plan: ReadPlan) -> None:
        self.accounts: set[tuple[str, str, str | None, str | None, str | None]] = set()
        self.observation_only = plan.observation_only

    def seen(self, computer: str, channel: str, event_id: int, data: dict[str, str | None]) -> bool:
        """Whether a record with this payload may be skipped (its account is already yielded)."""
        if not self.observation_only(channel, event_id, _logon_type(data.get("LogonType"))):
            return False
        key = (computer, channel, data.get("TargetUserSid"), data.get("TargetUserName"), data.get("TargetDomainName"))
        return key in self.accounts

    def skip(self, event: RawEvent) -> bool:
        """Whether to skip a decoded logon or logoff; one that is not skipped has its account noted."""
        data = event.data
        if not self.observation_only(event.channel, event.event_id, _logon_type(data.get("LogonType"))):
            return False
        key = (
            event.computer,
            event.channel,
            data.get("TargetUserSid"),
            data.get("TargetUserName"),
            data.get("TargetDomainName"),
        )
        if key in self.accounts:
            return True
        self.accounts.add(key)
        return False
