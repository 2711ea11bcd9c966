"""``evtrack explain NAME``: why a person is counted (aliases, how they were linked, the proof per window), or why
a name is not (excluded, outside the scope, only console or network logons, a machine or system account, seen only
outside the period, on hosts that do not count, never seen -- with near matches).

It builds the same report as ``evtrack report`` from the same source and settings, then looks the name up in it
and, for a name the report does not count, in the event table's rows that are not evidence and in the accounts a
slim read keeps of the rows it leaves out (:attr:`evtrack.usage.ReportSource.observations`): a slim read keeps every
LocalSessionManager, RemoteConnectionManager and RDP-type logon row, so console-only and authentication-only names
are told apart; network, service and batch logons it keeps only as accounts (their logon type is known when the
table holds every row, as the store and events datasets do).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evtrack.errors import ConfigError
from evtrack.events import decoded
from evtrack.identity import builtin_reason
from evtrack.report import Proof, Report, UserUsage
from evtrack.usage import ReportSettings, ReportSource, build_report

if TYPE_CHECKING:
    import pyarrow as pa

COUNTED = "counted"
NOT_IN_WINDOW = "not counted in this window"
EXCLUDED = "excluded"
BUILTIN = "machine or system account"
OUT_OF_SCOPE = "outside the scope"
HOSTS_NOT_COUNTED = "only on hosts that do not count"
OUTSIDE_PERIOD = "seen only outside the period"
BAD_TIME = "only records with an impossible time"
CONSOLE_ONLY = "only console logons"
NETWORK_ONLY = "only network logons"
NOT_RDP = "only logons that are not RDP"
AUTH_ONLY = "only RDP authentication, no session"
NEVER_SEEN = "never seen"

#: Logon types of 4624 in plain words (Microsoft's 4624 page).
LOGON_TYPES = {2: "console (interactive)", 3: "network", 4: "batch", 5: "service", 7: "unlock", 8: "network "
               "(cleartext)", 9: "new credentials (runas /netonly)", 10: "remote interactive (RDP)",
               11: "cached interactive (console)", 12: "cached remote interactive (RDP)"}
_CONSOLE_RULES = ("_console", "4624_lt7_local", "4624_lt2", "4624_lt11")
_NETWORK_RULES = ("4624_lt3", "4624_lt8")


@dataclass(frozen=True)
class Link:
    """One written form of a person and how it was tied to the others."""

    form: str
    how: str


@dataclass(frozen=True)
class Explanation:
    """The answer to "is NAME counted, and why (not)?" -- plain sentences plus the records behind them."""

    query: str
    status: str
    """One of the module's constants: counted, excluded, outside the scope, only console logons, never seen ..."""
    counted: bool
    summary: str
    """One plain sentence."""
    name: str | None = None
    """The person as the report names it (``DOMAIN\\sam``), when the name was found at all."""
    key: str | None = None
    windows: tuple[str, ...] = ()
    """The windows the person is counted in."""
    links: tuple[Link, ...] = ()
    proof: tuple[Proof, ...] = ()
    """Counted: the proof per window (the one asked for with ``--window``). Not counted: up to three records that
    show what was seen (``which`` = ``seen``)."""
    details: tuple[str, ...] = ()
    near: tuple[str, ...] = ()
    """Names seen in the inputs that look like the one asked for (for a name never seen)."""

    def to_dict(self) -> dict[str, Any]:
        from evtrack.report import jsonable

        return jsonable(self)  # type: ignore[no-any-return]


# -- matching a name against the forms the logs use ----------------------------------------------------------------


def _first_label(domain: str) -> str:
    return domain.strip().lower().split(".", 1)[0]


def matches(query: str, user: str | None, domain: str | None, sid: str | None) -> bool:
    """Whether one account as a record names it (user, domain, SID) is the name asked for: a SID, ``DOMAIN\\sam``
    (NetBIOS or FQDN domain), a UPN, or a bare sam name (any domain); case-insensitive."""
    q = query.strip().lower()
    if not q:
        return False
    if q.startswith("s-1-"):
        return (sid or "").strip().lower() == q
    name = (user or "").strip().lower()
    if not name:
        return False
    sam_of_upn, _, suffix = name.rpartition("@")
    if "\\" in q:
        want_domain, _, want_sam = q.rpartition("\\")
        if not domain:
            return bool(sam_of_upn) and sam_of_upn == want_sam and _first_label(suffix) == _first_label(want_domain)
        return name == want_sam and _first_label(domain) == _first_label(want_domain)
    if "@" in q:
        want_sam, _, want_suffix = q.rpartition("@")
        return name == q or (name == want_sam and bool(domain) and _first_label(domain or "") == _first_label(
            want_suffix))
    return name == q or (bool(sam_of_upn) and sam_of_upn == q)


def _split_form(form: str) -> tuple[str | None, str | None, str | None]:
    """An alias as the report writes it (``DOMAIN\\sam``, ``sam``, a UPN or a SID) → (user, domain, SID)."""
    if form.upper().startswith("S-1-"):
        return None, None, form
    domain, _, user = form.rpartition("\\")
    return user, domain or None, None


def _form_matches(query: str, form: str) -> bool:
    return matches(query, *_split_form(form))


def _user_matches(query: str, user: UserUsage) -> bool:
    forms = [user.display_name, user.key, *user.aliases, *([user.sid] if user.sid else [])]
    return any(_form_matches(query, form) for form in forms)


# -- the explanation ------------------------------------------------------------------------------------------------


def explain(source: ReportSource, settings: ReportSettings, query: str, window: str | None = None,
            report: Report | None = None) -> Explanation:
    """Why ``query`` is (not) counted by the report ``source`` and ``settings`` make (or by ``report``, when it was
    built from them already); ``window`` narrows a counted person's proof to one window label."""
    built = report if report is not None else build_report(source, settings)
    labels = [w.label for w in built.windows]
    if window is not None and window not in labels:
        raise ConfigError(f"--window {window!r} is not a window of this report (its windows: "
                          + (", ".join(labels) if labels else "none") + ")")
    query = query.strip()
    found = [u for u in built.users if _user_matches(query, u)]
    if found:
        return _counted(found, query, window, source, settings)
    for item in built.excluded:
        if _form_matches(query, item.name) or item.key.lower() == query.lower():
            return Explanation(
                query=query, status=EXCLUDED, counted=False, name=item.name, key=item.key,
                summary=f"{item.name} is not counted: {item.reason} ({item.events} RDP event(s), first "
                        f"{_when(item.first_seen, settings)}, last {_when(item.last_seen, settings)}).",
            )
    return _not_counted(query, built, source, settings)


def _when(moment: datetime, settings: ReportSettings) -> str:
    return moment.astimezone(settings.zone.info).strftime("%Y-%m-%d %H:%M %Z")


def _counted(found: list[UserUsage], query: str, window: str | None, source: ReportSource,
             settings: ReportSettings) -> Explanation:
    user = found[0]
    links = _links(user, source.table)
    if settings.directory is not None and user.in_directory:
        links.append(Link(user.full_name or user.display_name, "the directory export lists this account"))
    details = []
    if len(found) > 1:
        details.append("The name also matches " + ", ".join(f"{u.display_name} ({u.key})" for u in found[1:])
                       + ": separate accounts, counted apart (ask by SID to see one).")
    if user.local_account:
        details.append("A local account of a session host: Per User CALs are for domain users; check it.")
    proof = tuple(p for p in user.proof if window is None or p.window == window)
    if window is not None and window not in user.windows:
        return Explanation(
            query=query, status=NOT_IN_WINDOW, counted=False, name=user.display_name, key=user.key,
            windows=user.windows, links=tuple(links), details=tuple(details),
            summary=f"{user.display_name} is not counted in {window}: no RDP evidence there, and no session "
                    f"carried over into it; counted in {', '.join(user.windows)}.",
        )
    where = window if window is not None else ", ".join(user.windows)
    carried = [p.window for p in proof if p.carried_over]
    summary = f"{user.display_name} is counted in {where}" + (
        f" ({', '.join(carried)} only through a session carried over from an earlier window)" if carried else "")
    return Explanation(query=query, status=COUNTED, counted=True, name=user.display_name, key=user.key,
                       windows=user.windows, links=tuple(links), proof=proof, details=tuple(details),
                       summary=summary + ".")


def _raw_form(row: Mapping[str, Any]) -> str:
    return f"{row['domain']}\\{row['user']}" if row.get("domain") else (row.get("user") or "")


def _links(user: UserUsage, table: pa.Table) -> list[Link]:
    """How each written form joined the person: seen with the SID in a record, or by which naming rule."""
    import pyarrow.compute as pc

    with_sid: dict[str, dict[str, Any]] = {}
    if user.sid:
        rows = table.filter(pc.equal(pc.utf8_upper(pc.fill_null(table["sid"], "")), user.sid.upper()))
        rows = decoded(rows.select(["time", "host", "channel", "event_id", "record_id", "user", "domain", "source"]))
        for row in rows.sort_by([("time", "ascending"), ("record_id", "ascending")]).to_pylist():
            with_sid.setdefault(_raw_form(row).lower(), row)
    netbios = user.display_name.rpartition("\\")[0]
    links = []
    for form in user.aliases:
        if user.sid and form.upper() == user.sid.upper():
            links.append(Link(form, "the account's SID"))
            continue
        row = with_sid.get(form.lower())
        user_part, domain, _ = _split_form(form)
        if row is not None:
            when = row["time"].strftime("%Y-%m-%d %H:%M:%SZ") if row["time"] is not None else "(no time)"
            links.append(Link(form, f"named with the SID in {_log_name(row['channel'])} {row['event_id']} record "
                                    f"{row['record_id']} on {row['host']} at {when} ({row['source']})"))
        elif "@" in (user_part or ""):
            suffix = (user_part or "").rpartition("@")[2]
            links.append(Link(form, f"a UPN: its suffix {suffix} maps to the domain {netbios}"))
        elif domain and "." in domain:
            links.append(Link(form, f"the FQDN {domain} is the domain {netbios} (an --alias, or seen with the "
                                    "same SID or domain SID)"))
        elif not domain:
            links.append(Link(form, f"a name without a domain, joined to the only {netbios}\\{user_part} seen"))
        else:
            links.append(Link(form, "the same account name in records without a SID (LocalSessionManager, 4778)"))
    return links


def _log_name(channel: str) -> str:
    lower = channel.lower()
    if "localsessionmanager" in lower:
        return "LocalSessionManager"
    if "remoteconnectionmanager" in lower:
        return "RemoteConnectionManager"
    return channel


def _rows_naming(table: pa.Table, query: str) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    q = query.strip().lower()
    if q.startswith("s-1-"):
        mask = pc.equal(pc.utf8_lower(pc.fill_null(table["sid"], "")), q)
    else:
        sam = q.rpartition("\\")[2].rpartition("@")[0] or q.rpartition("\\")[2]
        lowered = pc.utf8_lower(pc.fill_null(table["user"], ""))
        mask = pc.or_(pc.equal(lowered, sam), pc.starts_with(lowered, sam + "@"))
    rows = decoded(table.filter(mask))
    rows = rows.sort_by([("time", "ascending"), ("source", "ascending"), ("record_id", "ascending")])
    return [r for r in rows.to_pylist() if matches(query, r["user"], r["domain"], r["sid"])]


def _seen(rows: Iterable[Mapping[str, Any]], settings: ReportSettings, limit: int = 3) -> tuple[Proof, ...]:
    tz = settings.zone.info
    result = []
    for row in rows:
        if row["time"] is None:
            continue
        result.append(Proof(window="", which="seen", file=row["source"] or "", host=row["host"] or "",
                            channel=row["channel"] or "", record_id=row["record_id"], event_id=row["event_id"],
                            time=row["time"], local_time=row["time"].astimezone(tz), rule=row["reason"] or "",
                            user=_raw_form(row) + (f" [{row['sid']}]" if row["sid"] else "")))
        if len(result) == limit:
            break
    return tuple(result)


def _not_counted(query: str, built: Report, source: ReportSource, settings: ReportSettings) -> Explanation:
    from evtrack.hosts import HostNames

    rows = _rows_naming(source.table, query)
    user, _, _ = _split_form(query)
    sid = query if query.upper().startswith("S-1-") else None
    builtin = builtin_reason(user, None, sid) or next(
        (why for r in rows if (why := builtin_reason(r["user"], r["domain"], r["sid"]))), None)

    def answer(status: str, summary: str, shown: Iterable[Mapping[str, Any]] = (), *details: str) -> Explanation:
        name = _raw_form(rows[0]) if rows else None
        return Explanation(query=query, status=status, counted=False, name=name, summary=summary,
                           proof=_seen(shown, settings), details=details)

    if builtin is not None:
        return answer(BUILTIN, f"{query} is a {builtin}: never counted as a person.", rows)
    evidence = [r for r in rows if r["rdp"]]
    if evidence:
        hosts = HostNames([r["host"] for r in evidence if r["host"]])
        counted_hosts = [r for r in evidence
                         if settings.hosts.counts(hosts.key(r["host"] or ""), hosts.names(hosts.key(r["host"] or "")))]
        if not counted_hosts:
            names = sorted({r["host"] for r in evidence if r["host"]})
            return answer(HOSTS_NOT_COUNTED, f"{query} has RDP evidence only on host(s) that --host/--exclude-host "
                          f"leave out: {', '.join(names)}.", evidence)
        timed = [r for r in counted_hosts if r["time"] is not None]
        if not timed:
            return answer(BAD_TIME, f"{query}'s RDP events carry no usable time: not counted (`evtrack events` "
                          "lists them).", counted_hosts)
        if built.period_start is not None and built.period_end is not None and not any(
                built.period_start <= r["time"] < built.period_end for r in timed):
            return answer(OUTSIDE_PERIOD, f"{query} has RDP evidence only outside the period "
                          f"({built.period_start:%Y-%m-%d} to {built.period_end:%Y-%m-%d}, end exclusive): first "
                          f"{_when(timed[0]['time'], settings)}, last {_when(timed[-1]['time'], settings)}.", timed)
        if settings.domains or settings.ous:
            domains = sorted({r["domain"] for r in timed if r["domain"]})
            if not domains and not settings.ous:
                return answer(OUT_OF_SCOPE, f"{query} cannot be placed in or out of the scope ({built.scope}): its "
                              "RDP evidence names no domain, so it is not counted and the report's counts are lower "
                              "bounds.", timed)
            return answer(OUT_OF_SCOPE, f"{query} is outside the scope ({built.scope}): its RDP evidence names the "
                          f"domain {', '.join(domains) or '(none)'}.", timed)
        return answer(NOT_RDP, f"{query} has RDP evidence that the report does not count (a time it judged "
                      "impossible, or an account it could not resolve): see `evtrack events`.", timed)
    if rows:
        rules = {r["reason"] or "" for r in rows}
        types = sorted({r["logon_type"] for r in rows if r["event_id"] == 4624 and r["logon_type"] is not None})
        words = ", ".join(f"type {t} {LOGON_TYPES.get(t, '')}".strip() for t in types)
        if all(any(k in rule for k in _CONSOLE_RULES) for rule in rules):
            example = next((r for r in rows if r["channel"] and "localsessionmanager" in r["channel"].lower()),
                           rows[0])
            address = f" with Address {example['address']}" if example["address"] else ""
            return answer(CONSOLE_ONLY, f"{query} signed in only at the console ({_log_name(example['channel'])} "
                          f"{example['event_id']}{address}): console use needs no RDS CAL.", rows)
        if all(rule in _NETWORK_RULES or rule == "logoff_not_remote" for rule in rules):
            return answer(NETWORK_ONLY, f"{query} appears only in network logons (4624 {words}): file shares, "
                          "printers, authentication -- not an RDS session.", rows)
        if rules <= {"1149_auth_only"}:
            return answer(AUTH_ONLY, f"{query} only authenticated to RD (RemoteConnectionManager 1149) and no "
                          "session followed on these logs: 1149 is not a sign-in.", rows)
        return answer(NOT_RDP, f"{query} appears only in records that are not RDP evidence ("
                      + ", ".join(sorted(rules)) + (f"; 4624 {words}" if words else "") + ").", rows)
    observed = [o for o in source.observations if matches(query, o[0], o[1], o[2])]
    if observed:
        forms = sorted({f"{o[1]}\\{o[0]}" if o[1] else o[0] for o in observed})
        return Explanation(
            query=query, status=NOT_RDP, counted=False, name=forms[0],
            summary=f"{query} appears only in logons that are not RDP (4624/4634 of a type other than 7, 10 and 12: "
                    "network, service, batch, or console type 2): not an RDS session.",
            details=("This read keeps only the account of such logons, not their type: `evtrack events FILES` lists "
                     "them with their logon type.",),
        )
    return Explanation(query=query, status=NEVER_SEEN, counted=False, near=_near(query, built, source),
                       summary=f"{query} is never seen in these inputs (no record names it).")


def _near(query: str, built: Report, source: ReportSource, limit: int = 3) -> tuple[str, ...]:
    """Names seen in the inputs that look like ``query`` (a typo, another domain, a UPN)."""
    import pyarrow.compute as pc

    forms: dict[str, str] = {}
    for u in built.users:
        for form in (u.display_name, *u.aliases):
            forms.setdefault(form.lower(), u.display_name)
    for item in built.excluded:
        forms.setdefault(item.name.lower(), item.name)
    named = decoded(source.table.filter(pc.is_valid(source.table["user"])).select(["user", "domain"]))
    for row in named.group_by(["user", "domain"], use_threads=False).aggregate([]).to_pylist():
        forms.setdefault(_raw_form(row).lower(), _raw_form(row))
    for user, domain, _, _ in source.observations:
        form = f"{domain}\\{user}" if domain else user
        forms.setdefault(form.lower(), form)
    keys = {key for key in forms if not key.startswith("s-1-")}
    q = query.strip().lower()
    by_sam: dict[str, set[str]] = {}
    for key in keys:
        by_sam.setdefault(key.rpartition("\\")[2], set()).add(key)
    hits = difflib.get_close_matches(q, sorted(keys), n=limit, cutoff=0.6)
    hits += [k for s in difflib.get_close_matches(q.rpartition("\\")[2], sorted(by_sam), n=limit, cutoff=0.6)
             for k in sorted(by_sam[s])]
    result: list[str] = []
    for key in hits:
        if forms[key] not in result:
            result.append(forms[key])
    return tuple(result[:limit])
