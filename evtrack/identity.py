"""One key per person, whatever form the logs use: SID, ``DOMAIN\\sam``, ``fqdn\\sam``, UPN, any case.

Pure functions over observations (user, domain, SID, host) taken from the event table:

1. Domains are canonicalised to the NetBIOS name: an FQDN (``contoso.local``) or UPN suffix maps to it through the
   alias map from the config, through pairs observed in the logs (the same SID, or the same domain SID, seen with
   both forms), or through its first label when that NetBIOS name is seen.
2. Names and SIDs are linked (union-find): a name seen with a SID belongs to that SID's person.
3. A name without a domain (RCM 1149, some LSM events) is attached to the one domain-qualified person with that
   sam account name, and only when there is exactly one; otherwise it stays apart, flagged unresolved.
4. A name that two SIDs held (an account deleted and re-created for someone else) is two people. An event that
   names the account without a SID (LocalSessionManager, 4778) goes to the SID of the same logon (a sighting of
   the name with a SID on the same host within :data:`SAME_LOGON_US`), else to the SID that held the name at that
   time (the latest sighting before it, else the first after it), else to the SID a directory export says holds
   the name now -- never simply to whichever SID came first.
5. Machine accounts, built-in principals and configured exclusions are never counted; configured exclusions are
   reported with their reason.
"""

from __future__ import annotations

import bisect
import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from evtrack.hosts import short_name

#: Built-in principals that are never a person (names compared case-insensitively).
BUILTIN_NAMES = frozenset({"system", "local service", "network service", "anonymous logon", "-", ""})
BUILTIN_DOMAINS = frozenset({"nt authority", "window manager", "font driver host", "nt service", "nt virtual machine"})
_SERVICE_SESSION_RE = re.compile(r"^(dwm|umfd)-\d+$", re.IGNORECASE)
_WELL_KNOWN_SID_RE = re.compile(r"^S-1-(0-0|5-(7|18|19|20)|5-(90|96)-.*)$", re.IGNORECASE)
_DOMAIN_SID_RE = re.compile(r"^(S-1-5-21-\d+-\d+-\d+)-\d+$", re.IGNORECASE)
#: A 4624 and the LocalSessionManager event of the same logon are written this close together (seconds, on a
#: slow host up to a minute or two).
SAME_LOGON_US = 120_000_000


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Accounts the admin chose not to count (admins, service accounts), with a reason shown in the report."""

    names: frozenset[str] = frozenset()
    """Exact names, case-insensitive: ``DOMAIN\\sam``, ``sam`` or a UPN."""
    sids: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    """Glob patterns matched against ``domain\\sam`` and ``sam`` (lower case), e.g. ``*\\svc_*``."""

    @staticmethod
    def build(names: Iterable[str] = (), sids: Iterable[str] = (), patterns: Iterable[str] = ()) -> Exclusions:
        return Exclusions(
            frozenset(n.strip().lower() for n in names if n.strip()),
            frozenset(s.strip().upper() for s in sids if s.strip()),
            tuple(p.strip().lower() for p in patterns if p.strip()),
        )


def builtin_reason(user: str | None, domain: str | None, sid: str | None) -> str | None:
    """Why an account is never counted (machine, built-in, service session), or None for a possible person."""
    name = (user or "").strip().lower()
    if name in BUILTIN_NAMES:
        return "built-in account" if name not in ("-", "") else "no user name"
    if name.endswith("$"):
        return "machine account"
    if _SERVICE_SESSION_RE.match(name):
        return "window manager / font driver session"
    if (domain or "").strip().lower() in BUILTIN_DOMAINS:
        return "built-in account"
    if sid and _WELL_KNOWN_SID_RE.match(sid.strip()):
        return "built-in account"
    return None


@dataclass(frozen=True, slots=True)
class Observation:
    """One sighting of an account in one event."""

    user: str
    domain: str | None
    sid: str | None
    host: str
    """Short host name, lower case (for local-account detection)."""


def host_key(computer: str) -> str:
    """A host's key: its short name in lower case (``RDSH01.contoso.local`` and ``RDSH01`` are one host; an IP
    address is kept whole)."""
    return short_name(computer)


@dataclass(slots=True)
class _UnionFind:
    parent: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def find(self, node: tuple[str, ...]) -> tuple[str, ...]:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    sid: dict[tuple[str, ...], str] = field(default_factory=dict)
    """The SID of a component (by root), if it has one."""

    def union(self, a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        """Join two components, unless that would join two different SIDs (two accounts, never one person)."""
        for node in (a, b):
            if node[0] == "sid":
                self.sid.setdefault(self.find(node), node[1])
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        sa, sb = self.sid.get(ra), self.sid.get(rb)
        if sa is not None and sb is not None and sa != sb:
            return False
        # deterministic: the smaller node becomes the root
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        sid = sa or sb
        if sid is not None:
            self.sid[ra] = sid
        return True


@dataclass(frozen=True, slots=True)
class Identity:
    """A resolved person."""

    key: str
    """The SID when any event for this person carries one, else ``domain\\sam`` in lower case."""
    display: str
    """``DOMAIN\\sam`` as most often written (NetBIOS domain upper case)."""
    sid: str | None
    domain: str | None
    """Canonical (NetBIOS, upper case) domain, None when it could not be resolved."""
    aliases: tuple[str, ...]
    """Every raw form seen: ``CONTOSO\\alice``, ``contoso.local\\Alice``, ``alice``, SIDs..."""
    local_account: bool
    """The domain is a session host's own name: a local account, which Per User CALs do not cover."""
    domain_resolved: bool
    excluded: str | None
    """Why this person is not counted (configured exclusion or built-in), or None."""


class IdentityResolver:
    """Resolves observations to :class:`Identity` keys. Build it once over all rows, then look up."""

    def __init__(self, observations: Iterable[Observation], *, aliases: Mapping[str, str] | None = None,
                 exclusions: Exclusions | None = None, default_domain: str | None = None) -> None:
        self._exclusions = exclusions or Exclusions()
        # an account is usually seen on many hosts: the work below is done once per distinct (user, domain, SID),
        # in the order first seen, with how often it was seen (the forms' counts); only the hosts need every row
        observations = list(observations)
        distinct = Counter((o.user, o.domain, o.sid) for o in observations)
        never = {account for account in distinct if builtin_reason(*account) is not None}
        accounts = {account: seen for account, seen in distinct.items() if account not in never}
        self._hosts = {o.host for o in observations if (o.user, o.domain, o.sid) not in never}
        self._domain_map = self._domain_aliases(accounts, aliases or {})
        self._netbios = {d.strip().upper() for user, d, _ in accounts if d and "." not in d and "@" not in user}
        self._netbios |= set(self._domain_map.values())
        self._uf = _UnionFind()
        self.conflicts: set[str] = set()
        """Names seen with more than one SID: separate accounts (counted apart); sightings without a SID go to
        the first."""
        self._forms: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        named: list[tuple[tuple[str, ...], tuple[str, str | None, str | None], int]] = []
        for account, seen in accounts.items():
            user, domain, sid = account
            node = self._name_node(user, domain)
            self._uf.find(node)
            named.append((node, account, seen))
            joined = not sid or bool(_WELL_KNOWN_SID_RE.match(sid)) or self._uf.union(node, ("sid", sid.upper()))
            if not joined:
                self.conflicts.add(f"{domain}\\{user}" if domain else user)
        # attach names without a domain when exactly one domain-qualified person has that sam name
        by_sam: dict[str, set[str]] = defaultdict(set)
        for node in list(self._uf.parent):
            if node[0] == "name" and node[1] != "":
                by_sam[node[2]].add(node[1])
        self._unresolved: set[tuple[str, ...]] = set()
        self._qualified: dict[tuple[str, ...], tuple[str, ...]] = {}
        """A name without a domain -> the one domain-qualified name it was attached to."""
        for node in list(self._uf.parent):
            if node[0] == "name" and node[1] == "":
                domains = by_sam.get(node[2], set())
                if len(domains) == 1:
                    self._qualified[node] = ("name", next(iter(domains)), node[2])
                    self._uf.union(node, self._qualified[node])
                elif not domains and default_domain:  # no qualified name to join: the configured domain's
                    self._qualified[node] = ("name", self.canonical_domain(default_domain), node[2])
                    self._uf.union(node, self._qualified[node])
                else:
                    self._unresolved.add(node)
        for node, (user, domain, sid), seen in named:
            raw = f"{domain}\\{user}" if domain else user
            owner = self._sid_node(sid) or node
            self._forms[self._uf.find(owner)][raw] += seen
        self._members: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for node in self._uf.parent:
            self._members[self._uf.find(node)].append(node)
        self._cache: dict[tuple[str, ...], Identity] = {}
        self._name_sids: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for node, (_user, _domain, sid), _seen in named:
            if sid and not _WELL_KNOWN_SID_RE.match(sid.strip()):
                self._name_sids[node].add(sid.strip().upper())
        self._contested_names = frozenset(n[-1] for n, sids in self._name_sids.items() if len(sids) > 1)
        self._resolved: dict[tuple[str | None, str | None, str | None], Identity | None] = {}
        self._timeline: dict[tuple[str, ...], list[tuple[int, str, str]]] = {}
        self._timeline_times: dict[tuple[str, ...], list[int]] = {}
        self._current: dict[tuple[str, ...], str] = {}
        self.attributed: set[str] = set()
        """Names held by several SIDs whose SID-less events were attributed by time and host."""

    def add_sightings(self, sightings: Iterable[tuple[str | None, str | None, str | None, str, int]]) -> None:
        """Timed sightings (user, domain, SID, host, time µs) of names that several SIDs held: the timeline that
        attributes their SID-less events."""
        timeline: dict[tuple[str, ...], list[tuple[int, str, str]]] = defaultdict(list)
        for user, domain, sid, host, moment in sightings:
            if not user or not sid or _WELL_KNOWN_SID_RE.match(sid.strip()):
                continue
            node = self._name_node(user, domain)
            if len(self._name_sids.get(node, ())) > 1:
                timeline[node].append((moment, host, sid.strip().upper()))
        for node, items in timeline.items():
            self._timeline[node] = sorted(set(items) | set(self._timeline.get(node, ())))
            self._timeline_times[node] = [t for t, _, _ in self._timeline[node]]

    def set_current_holder(self, user: str, domain: str | None, sid: str) -> None:
        """A directory export says ``sid`` holds this name now."""
        self._current[self._name_node(user, domain)] = sid.strip().upper()

    def _attribute(self, node: tuple[str, ...], host: str, moment: int) -> str | None:
        """The SID that held a contested name at ``moment`` (see the module's rule 4)."""
        timeline = self._timeline.get(node, [])
        if timeline:
            times = self._timeline_times[node]
            lo = bisect.bisect_left(times, moment - SAME_LOGON_US)
            hi = bisect.bisect_right(times, moment + SAME_LOGON_US)
            same = [(abs(t - moment), sid) for t, h, sid in timeline[lo:hi] if h == host]
            if same:
                return min(same)[1]
            index = bisect.bisect_right(times, moment)
            return timeline[index - 1][2] if index else timeline[0][2]
        return self._current.get(node)

    # -- domains -------------------------------------------------------------------------------------------------
    @staticmethod
    def _domain_aliases(accounts: Iterable[tuple[str, str | None, str | None]],
                        configured: Mapping[str, str]) -> dict[str, str]:
        """Lower-case domain form → canonical upper-case NetBIOS name, from the (user, domain, SID) accounts."""
        mapping = {k.strip().lower(): v.strip().upper() for k, v in configured.items()}
        pairs = list(dict.fromkeys((domain, sid) for _, domain, sid in accounts if domain))  # in the order seen
        by_domain_sid: dict[str, set[str]] = defaultdict(set)
        by_sid: dict[str, set[str]] = defaultdict(set)
        for domain, sid in pairs:
            if not sid:
                continue
            by_sid[sid.upper()].add(domain.strip().lower())
            match = _DOMAIN_SID_RE.match(sid.strip())
            if match:
                by_domain_sid[match.group(1).upper()].add(domain.strip().lower())
        for group in [*by_sid.values(), *by_domain_sid.values()]:
            netbios = sorted(d for d in group if "." not in d)
            if len(netbios) == 1:
                for form in group:
                    if "." in form:
                        mapping.setdefault(form, netbios[0].upper())
        netbios_seen = {domain.strip().lower() for domain, _ in pairs if "." not in domain}
        for domain, _ in pairs:
            if "." in domain:
                form = domain.strip().lower()
                first = form.split(".", 1)[0]
                if form not in mapping and first in netbios_seen:
                    mapping[form] = first.upper()
        return mapping

    def canonical_domain(self, domain: str | None) -> str:
        """``contoso.local`` → ``CONTOSO`` (when known), ``contoso`` → ``CONTOSO``; "" for no domain."""
        if not domain or not domain.strip():
            return ""
        form = domain.strip().lower()
        return self._domain_map.get(form, form.upper() if "." not in form else form)

    def _name_node(self, user: str, domain: str | None) -> tuple[str, ...]:
        user = user.strip()
        sam, _, suffix = user.rpartition("@")
        upn = bool(sam) and "." in suffix  # alice@contoso.com; a name that merely holds an @ is kept as it is
        if upn and not domain:
            canonical = self._domain_map.get(suffix.lower())
            first = suffix.lower().split(".", 1)[0].upper()
            if canonical is None and first in self._netbios:
                canonical = first
            if canonical is not None:
                return ("name", canonical, sam.lower())
            return ("upn", user.lower(), "")
        if upn and domain:
            user = sam
        return ("name", self.canonical_domain(domain), user.lower())

    # -- lookups -------------------------------------------------------------------------------------------------
    def resolve(self, user: str | None, domain: str | None, sid: str | None, host: str = "",
                time: int | None = None) -> Identity | None:
        """The person behind one sighting; None for accounts that are never a person (machine, built-in).
        ``time`` (µs) attributes a SID-less sighting of a name that several SIDs held (rule 4)."""
        contested = self._contested(user, domain) if sid is None and time is not None else False
        memo = (user, domain, sid)
        if not contested and memo in self._resolved:
            return self._resolved[memo]
        if builtin_reason(user, domain, sid) is not None or user is None:
            self._resolved[memo] = None
            return None
        node = self._sid_node(sid)
        if node is None:
            node = self._name_node(user, domain)
            if contested and time is not None:
                node = self._node_of(user, domain)
                held = self._attribute(node, host, time)
                if held is not None:
                    self.attributed.add(f"{domain}\\{user}" if domain else user)
                    node = ("sid", held)
        root = self._uf.find(node)
        identity = self._cache.get(root)
        if identity is None:
            identity = self._cache[root] = self._identity(root)
        if not contested:
            self._resolved[memo] = identity
        return identity

    def _contested(self, user: str | None, domain: str | None) -> bool:
        """Whether several SIDs held this name (its SID-less sightings are attributed by time)."""
        if not self._contested_names or not user:
            return False
        return len(self._name_sids.get(self._node_of(user, domain), ())) > 1

    def _node_of(self, user: str, domain: str | None) -> tuple[str, ...]:
        """The name node, a bare name standing for the one domain-qualified name it joined."""
        node = self._name_node(user, domain)
        return self._qualified.get(node, node)

    @property
    def contested_names(self) -> frozenset[str]:
        """Lower-case sam account names that several SIDs held."""
        return self._contested_names

    @staticmethod
    def _sid_node(sid: str | None) -> tuple[str, ...] | None:
        if not sid or not sid.strip() or _WELL_KNOWN_SID_RE.match(sid.strip()):
            return None
        return ("sid", sid.strip().upper())

    def _identity(self, root: tuple[str, ...]) -> Identity:
        members = self._members.get(root) or [root]
        sids = sorted(n[1] for n in members if n[0] == "sid")
        names = sorted(n for n in members if n[0] == "name" and n[1] != "")
        forms = self._forms.get(root, Counter())
        if names:
            counts = Counter({n: sum(c for f, c in forms.items() if f.lower().endswith("\\" + n[2])) for n in names})
            best = max(names, key=lambda n: (counts[n], [-ord(ch) for ch in n[1] + n[2]]))
            domain = best[1]
            sam_forms = Counter(f.rsplit("\\", 1)[-1] for f in forms if f.lower().rsplit("\\", 1)[-1] == best[2])
            sam = min(sam_forms, key=lambda s: (-sam_forms[s], s)) if sam_forms else best[2]
            display = f"{domain}\\{sam}"
            key = sids[0] if sids else f"{domain.lower()}\\{best[2]}"
        elif sids and forms:  # a second account with a name already taken by another SID
            raw_form = min(forms, key=lambda f: (-forms[f], f))
            raw_domain, _, sam = raw_form.rpartition("\\")
            domain = self.canonical_domain(raw_domain) if raw_domain else ""
            display = f"{domain}\\{sam}" if domain else sam
            key = sids[0]
        else:
            domain = ""
            other = sorted(n for n in members if n[0] in ("name", "upn"))
            raw = other[0][2] if other and other[0][0] == "name" else (other[0][1] if other else root[-1])
            display = raw
            key = sids[0] if sids else (f"?\\{raw}" if other and other[0][0] == "name" else raw)
        aliases = tuple(sorted(set(forms) | set(sids)))
        local = bool(domain) and domain.lower() in self._hosts
        resolved = bool(domain) and not (root in self._unresolved and not sids)
        return Identity(
            key=key,
            display=display,
            sid=sids[0] if sids else None,
            domain=domain or None,
            aliases=aliases,
            local_account=local,
            domain_resolved=resolved,
            excluded=self._excluded(display, aliases, sids, members),
        )

    def unmatched_exclusions(self) -> list[str]:
        """Configured exclusions (names, SIDs, patterns) that match no account seen in the inputs: a typo, or a
        TOML escape that turned ``CONTOSO\\bob`` into a control character."""
        ex = self._exclusions
        forms = {f.lower() for counter in self._forms.values() for f in counter}
        forms |= {f.rsplit("\\", 1)[-1] for f in list(forms)}
        sids = {n[1] for n in self._uf.parent if n[0] == "sid"}
        nodes = set(self._uf.parent)
        unmatched = []
        for name in sorted(ex.names):
            domain, _, user = name.rpartition("\\")
            if name not in forms and self._name_node(user, domain or None) not in nodes:
                unmatched.append(name)
        unmatched += [sid for sid in sorted(ex.sids) if sid not in sids]
        unmatched += [p for p in ex.patterns if not any(fnmatch.fnmatchcase(f, p) for f in forms)]
        return unmatched

    def _excluded(self, display: str, aliases: tuple[str, ...], sids: list[str],
                  members: list[tuple[str, ...]]) -> str | None:
        ex = self._exclusions
        for name in sorted(ex.names):  # any written form (DOMAIN\\sam, fqdn\\sam, UPN) of the same account
            domain, _, user = name.rpartition("\\")
            node = self._name_node(user, domain or None)
            if node in members or (not domain and "@" not in user and any(
                    m[0] == "name" and m[2] == user for m in members)):
                return f"excluded by name {name}"
        for sid in sids:
            if sid.upper() in ex.sids:
                return f"excluded by SID {sid}"
        candidates = {display.lower(), display.rsplit("\\", 1)[-1].lower()} | {a.lower() for a in aliases}
        candidates |= {a.rsplit("\\", 1)[-1] for a in list(candidates)}
        for name in sorted(candidates):
            if name in ex.names:
                return f"excluded by name {name}"
        for pattern in ex.patterns:
            for name in sorted(candidates):
                if fnmatch.fnmatchcase(name, pattern):
                    return f"excluded by pattern {pattern}"
        return None
