"""Which host a record belongs to, and which hosts count.

A host is keyed by its FQDN wherever a record gives one: ``RDSH01.contoso.local`` and ``RDSH01.fabrikam.local``
are two hosts, even though both call themselves ``RDSH01``. A short name (``RDSH01``, as some exports and
forwarded events write it) joins the one FQDN host with that first label; when several FQDN hosts share it, the
short name is ambiguous and stays a host of its own (and the report says so). The key shown is the short name
in lower case when it is unambiguous (so reports stay as readable as before), else the FQDN in lower case. An IP
address (an RD Gateway's ``Resource`` when the user connected by address) is a name of its own, never cut at its
dots: evtrack does no DNS, so ``10.0.0.21`` stays apart from the host that has that address.

Per User CALs are for RD Session Host use: hosts can be included or excluded by glob patterns matched against
both the key and every raw name of the host, case-insensitively.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass


def _clean(name: str) -> str:
    return name.strip().rstrip(".").lower()


def short_name(name: str) -> str:
    """The first label of a host name, lower case; an IP address whole."""
    clean = _clean(name)
    if clean[:1].isdigit() or ":" in clean:
        try:
            ipaddress.ip_address(clean)
            return clean
        except ValueError:
            pass
    return clean.split(".", 1)[0]


class HostNames:
    """Maps every raw ``System/Computer`` value of one report's inputs to a host key."""

    def __init__(self, names: Iterable[str]) -> None:
        raw = {_clean(n) for n in names if n and n.strip()}
        fqdns: dict[str, set[str]] = defaultdict(set)
        for name in raw:
            if "." in name and short_name(name) != name:
                fqdns[short_name(name)].add(name)
        self._keys: dict[str, str] = {}
        self.ambiguous: dict[str, tuple[str, ...]] = {}
        """Short names that several FQDN hosts share, with those hosts (records under the short name alone
        cannot be told apart and form a host of their own)."""
        for name in raw:
            short = short_name(name)
            owners = fqdns.get(short, set())
            if len(owners) > 1:
                self._keys[name] = name if "." in name else short
                self.ambiguous[short] = tuple(sorted(owners))
            else:
                self._keys[name] = short
        self._seen: dict[str, str] = {}
        self._raw: dict[str, set[str]] = defaultdict(set)
        for name, key in self._keys.items():
            self._raw[key].add(name)

    def key(self, name: str | None) -> str:
        """The host key for a raw name (a name never seen when the map was built keys by itself)."""
        if not name:
            return ""
        found = self._seen.get(name)
        if found is None:
            clean = _clean(name)
            found = self._seen[name] = self._keys.get(clean) or short_name(clean)
        return found

    def all_keys(self) -> tuple[str, ...]:
        return tuple(sorted(self._raw))

    def names(self, key: str) -> tuple[str, ...]:
        """Every raw name (lower case) that maps to ``key``."""
        return tuple(sorted(self._raw.get(key, {key})))


def _candidates(key: str, names: Iterable[str]) -> set[str]:
    """What a host pattern is matched against: the key and every raw name, each also as its short name."""
    candidates = {key.lower(), *(n.lower() for n in names)}
    return candidates | {short_name(c) for c in candidates}


@dataclass(frozen=True, slots=True)
class HostSelection:
    """Which hosts count: ``include`` patterns (empty = every host) minus ``exclude`` patterns."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def build(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> HostSelection:
        return HostSelection(tuple(p.strip().lower() for p in include if p.strip()),
                             tuple(p.strip().lower() for p in exclude if p.strip()))

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def unmatched(self, keys: Iterable[str], names_of: Callable[[str], Iterable[str]]) -> list[str]:
        """A warning for each pattern that matches no host (a typo leaves the answer silently wrong)."""
        candidates = {c for key in keys for c in _candidates(key, names_of(key))}
        return [f"The host pattern {kind} {pattern!r} matches no host in the inputs."
                for kind, patterns in (("--host", self.include), ("--exclude-host", self.exclude))
                for pattern in patterns if not any(fnmatch.fnmatchcase(c, pattern) for c in candidates)]

    def counts(self, key: str, names: Iterable[str] = ()) -> bool:
        """Whether the host (its key and raw names) is counted."""
        candidates = _candidates(key, names)
        if self.include and not any(fnmatch.fnmatchcase(c, p) for c in candidates for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(c, p) for c in candidates for p in self.exclude)
