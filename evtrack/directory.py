"""The user directory from an export: who a SID or name is, their display name, OU, department and whether enabled.

Two exports are read, their columns detected from the header:

- Active Directory: ``Get-ADUser -Filter * -Properties DisplayName,Department,... | Export-Csv`` (SamAccountName,
  UserPrincipalName, SID, DistinguishedName, Enabled, DisplayName, GivenName, Surname; Windows PowerShell writes a
  ``#TYPE ...`` first line unless ``-NoTypeInformation``; ``-UseCulture`` gives ``;`` in some locales).
- Microsoft Entra admin centre, Users → "Download users" (userPrincipalName, displayName, accountEnabled,
  department, and for users synchronised from AD onPremisesSamAccountName, onPremisesSecurityIdentifier,
  onPremisesDistinguishedName). Without a SAM column, ``mailNickname`` is used as the SAM name, which is what
  Entra Domain Services derives it from for cloud users (check this against your managed domain).

Encodings: UTF-8 with or without BOM, UTF-16 with BOM (``Export-Csv -Encoding Unicode``) or without, else
Windows-1252. The NetBIOS domain is in neither export: the DNS domain comes from the DN's ``DC=`` parts (else the
UPN suffix), and the NetBIOS name is a hint the caller gives (``--netbios`` / the config's ``[aliases]``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from evtrack.errors import SourceError

#: Header name (lower case, without spaces, ``_`` and ``-``) → field, in order of preference per field.
COLUMNS: dict[str, tuple[str, ...]] = {
    "sid": ("sid", "objectsid", "securityidentifier", "onpremisessecurityidentifier"),
    "sam": ("samaccountname", "onpremisessamaccountname", "mailnickname"),
    "upn": ("userprincipalname", "upn"),
    "display_name": ("displayname",),
    "name": ("name", "cn"),
    "given": ("givenname",),
    "surname": ("surname", "sn"),
    "dn": ("distinguishedname", "onpremisesdistinguishedname", "dn"),
    "enabled": ("enabled", "accountenabled"),
    "department": ("department",),
}
IDENTITY_FIELDS = ("sid", "sam", "upn")
_TRUE = frozenset({"true", "yes", "1", "enabled"})
_FALSE = frozenset({"false", "no", "0", "disabled"})
_SID_RE = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)
_BRACKETED = re.compile(r"\[([A-Za-z0-9_]+)\]")


# -- reading PowerShell / portal CSV exports -----------------------------------------------------------------


def decode_export(path: Path, data: bytes) -> str:
    """Text of a CSV export: BOM-detected UTF-8/UTF-16, BOM-less UTF-16 by its NUL bytes, UTF-8, else cp1252."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _decode(path, data[len(bom):], encoding)
    head = data[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return _decode(path, data, "utf-16-le")
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return _decode(path, data, "utf-16-be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not valid {encoding} text at byte {exc.start}") from None


def normalise_header(name: str) -> str:
    """``User principal name [userPrincipalName] Required`` → ``userprincipalname``; ``SamAccountName`` likewise."""
    match = _BRACKETED.search(name)
    if match:
        name = match.group(1)
    return re.sub(r"[\s_\-]", "", name.strip().strip('"')).lower()


def read_export_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The normalised header and the rows (keyed by normalised header) of a PowerShell or portal CSV export.

    Skips ``#TYPE`` (Windows PowerShell) and ``version:`` (Entra bulk templates) first lines; the delimiter is
    ``,``, ``;`` or tab, whichever the header line uses most.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    text = decode_export(path, data)
    lines = text.splitlines(keepends=True)
    while lines and (not lines[0].strip() or lines[0].lstrip().lower().startswith(("#type", "version:"))):
        lines.pop(0)
    if not lines:
        raise SourceError(path, "empty CSV file (no header line)")
    header_line = lines[0]
    delimiter = max(",;\t", key=lambda d: (header_line.count(d), d == ","))
    reader = csv.reader(io.StringIO("".join(lines)), delimiter=delimiter)
    try:
        raw_header = next(reader)
        header = [normalise_header(h) for h in raw_header]
        rows = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            rows.append({name: value.strip() for name, value in zip(header, record, strict=False) if name})
    except csv.Error as exc:
        raise SourceError(path, f"not a readable CSV file: {exc}") from None
    return header, rows


def pick_columns(header: Iterable[str], columns: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Field → the header names (normalised) that provide it, in order of preference."""
    present = set(header)
    chosen: dict[str, tuple[str, ...]] = {}
    for field_name, candidates in columns.items():
        found = tuple(c for c in candidates if c in present)
        if found:
            chosen[field_name] = found
    return chosen


def cell(row: Mapping[str, str], columns: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``columns`` (e.g. an Entra cloud user has no onPremisesSamAccountName,
    so mailNickname is used)."""
    for column in columns:
        value = row.get(column, "").strip()
        if value:
            return value
    return None


# -- distinguished names ---------------------------------------------------------------------------------------


def split_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """RFC 4514 DN → ((type, value), ...) with types and values lower case, escapes undone, spaces trimmed.

    ``CN=Smith\\, John,OU=Sales, DC=contoso,DC=com`` → (("cn", "smith, john"), ("ou", "sales"), ("dc", "contoso"),
    ("dc", "com")).
    """
    parts: list[tuple[str, str]] = []
    current: list[str] = []
    pending = bytearray()  # hex escapes are UTF-8 bytes: \C3\A9 is one character

    def flush() -> None:
        if pending:
            current.append("\x00" + pending.decode("utf-8", errors="replace") + "\x00")
            pending.clear()

    i = 0
    text = dn.strip()
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            pair = text[i + 1:i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                pending.append(int(pair, 16))
                i += 3
                continue
            flush()
            current.append("\x00" + text[i + 1] + "\x00")  # escaped: never a separator, never trimmed
            i += 2
            continue
        flush()
        if char in ",;":
            parts.append(_rdn("".join(current)))
            current = []
        else:
            current.append(char)
        i += 1
    flush()
    if current or parts:
        parts.append(_rdn("".join(current)))
    return tuple(p for p in parts if p != ("", ""))


def _rdn(text: str) -> tuple[str, str]:
    kind, _, value = text.partition("=")
    return kind.strip().lower(), value.strip().replace("\x00", "").lower()


def dns_domain_of(dn: str) -> str | None:
    """``...,DC=contoso,DC=com`` → ``contoso.com``; None when the DN has no ``DC=`` part."""
    labels = [value for kind, value in split_dn(dn) if kind == "dc"]
    return ".".join(labels) if labels else None


def in_ou(user: DirectoryUser | str, ou: str) -> bool:
    """True when the user (or DN) is in the OU ``ou`` or one of its child OUs (case and spacing do not matter)."""
    dn = user if isinstance(user, str) else (user.dn or "")
    parts = split_dn(dn)
    wanted = split_dn(ou)
    if not parts or not wanted:
        return False
    parent = parts[1:]
    return len(parent) >= len(wanted) and parent[len(parent) - len(wanted):] == wanted


# -- the directory -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryUser:
    """One account from the export."""

    sid: str | None
    sam: str | None
    upn: str | None
    display_name: str | None
    dn: str | None
    ou_path: str | None
    """The DN of the container the account is in (the DN without its first part), as written in the export."""
    enabled: bool | None
    department: str | None
    dns_domain: str | None
    """From the DN's ``DC=`` parts, else the UPN suffix (lower case)."""
    row: int = 0
    """Position of the account among the export's data rows (1 = first), for messages."""

    @property
    def domains(self) -> frozenset[str]:
        """Lower-case domain forms this account may be written with: DNS domain, its first label, UPN suffix."""
        forms = set()
        if self.dns_domain:
            forms |= {self.dns_domain, self.dns_domain.split(".", 1)[0]}
        if self.upn and "@" in self.upn:
            forms.add(self.upn.rsplit("@", 1)[1].lower())
        return frozenset(forms)


@dataclass(frozen=True)
class Directory:
    """Accounts from one or more directory exports, with lookups by SID, by (domain, SAM name) and by UPN."""

    users: tuple[DirectoryUser, ...]
    source: str = ""
    netbios: str | None = None
    """NetBIOS domain name given as a hint (the exports do not hold it); upper case."""
    _by_sid: dict[str, DirectoryUser] = field(default_factory=dict, repr=False, compare=False)
    _by_sam: dict[str, list[DirectoryUser]] = field(default_factory=dict, repr=False, compare=False)
    _by_upn: dict[str, DirectoryUser] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_sam: dict[str, list[DirectoryUser]] = defaultdict(list)
        for user in self.users:
            if user.sid:
                self._by_sid.setdefault(user.sid.upper(), user)
            if user.upn:
                self._by_upn.setdefault(user.upn.lower(), user)
            if user.sam:
                by_sam[user.sam.lower()].append(user)
        self._by_sam.update(by_sam)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def dns_domains(self) -> tuple[str, ...]:
        """DNS domains of the accounts' DNs (or UPN suffixes when there is no DN), sorted."""
        return tuple(sorted({u.dns_domain for u in self.users if u.dns_domain}))

    @property
    def upn_suffixes(self) -> tuple[str, ...]:
        return tuple(sorted({u.upn.rsplit("@", 1)[1].lower() for u in self.users if u.upn and "@" in u.upn}))

    def by_sid(self, sid: str | None) -> DirectoryUser | None:
        return self._by_sid.get(sid.strip().upper()) if sid else None

    def by_upn(self, upn: str | None) -> DirectoryUser | None:
        return self._by_upn.get(upn.strip().lower()) if upn else None

    def by_sam(self, sam: str | None, domain: str | None = None) -> DirectoryUser | None:
        """The account with this SAM name in ``domain`` (NetBIOS hint, DNS domain, its first label or UPN suffix);
        any domain when ``domain`` is empty. None when not found or when several accounts match."""
        if not sam:
            return None
        candidates = self._by_sam.get(sam.strip().lower(), [])
        if domain and domain.strip():
            form = domain.strip().lower()
            netbios = (self.netbios or "").lower()
            candidates = [u for u in candidates if form in u.domains or (netbios and form == netbios)]
        return candidates[0] if len(candidates) == 1 else None

    def lookup(self, user: str | None, domain: str | None = None, sid: str | None = None) -> DirectoryUser | None:
        """The account behind a sighting in the logs: by SID, else by UPN (``user@suffix``), else by SAM name."""
        found = self.by_sid(sid)
        if found is not None or not user:
            return found
        if "@" in user:
            return self.by_upn(user) or self.by_sam(user.split("@", 1)[0], user.rsplit("@", 1)[1])
        if "\\" in user and not domain:
            domain, user = user.split("\\", 1)
        return self.by_sam(user, domain)

    def aliases(self, netbios: str | Mapping[str, str] | None = None) -> dict[str, str]:
        """Domain form (lower case) → NetBIOS name, for ``IdentityResolver(aliases=...)`` / the ``[aliases]`` config.

        ``netbios`` (or the hint given at load time) is one NetBIOS name, or a mapping DNS domain → NetBIOS name
        when the export holds several domains. Each DNS domain and the UPN suffixes of its accounts map to it.
        """
        hint = self.netbios if netbios is None else netbios
        if hint is None:
            return {}
        if isinstance(hint, str):
            if len(self.dns_domains) > 1:
                raise SourceError(self.source or "directory", "the export holds several domains ("
                                  + ", ".join(self.dns_domains) + "): give the NetBIOS name of each")
            mapping = dict.fromkeys(self.dns_domains, hint)
        else:
            mapping = {k.strip().lower(): v for k, v in hint.items()}
        result: dict[str, str] = {}
        for user in self.users:
            target = mapping.get(user.dns_domain or "")
            if target is None:
                continue
            for form in sorted(user.domains - {(user.dns_domain or "").split(".", 1)[0]}):
                result.setdefault(form, target.strip().upper())
        return dict(sorted(result.items()))


def _enabled(value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _parent(dn: str) -> str | None:
    """The DN without its first RDN, as written (escaped commas respected)."""
    i = 0
    while i < len(dn):
        if dn[i] == "\\":
            i += 2
            continue
        if dn[i] in ",;":
            return dn[i + 1:].strip() or None
        i += 1
    return None


def load_directory(path: Path, *, netbios: str | None = None) -> Directory:
    """Read a directory export (see the module docstring); ``netbios`` is the NetBIOS domain name, if known."""
    path = Path(path)
    header, rows = read_export_csv(path)
    cols = pick_columns(header, COLUMNS)
    if not any(name in cols for name in IDENTITY_FIELDS):
        seen = ", ".join(h for h in header if h) or "none"
        raise SourceError(path, "no identity column: need one of SID, SamAccountName, UserPrincipalName "
                          f"(AD export) or userPrincipalName, onPremisesSamAccountName (Entra export); columns: {seen}")
    users = []
    for number, row in enumerate(rows, start=1):
        def get(name: str, row: dict[str, str] = row) -> str | None:
            return cell(row, cols.get(name, ()))

        sid = get("sid")
        if sid and not _SID_RE.match(sid):
            sid = None
        sam = get("sam")
        upn = get("upn")
        if not (sid or sam or upn):
            continue
        dn = get("dn")
        display = get("display_name") or get("name")
        if display is None and (get("given") or get("surname")):
            display = " ".join(p for p in (get("given"), get("surname")) if p)
        dns = dns_domain_of(dn) if dn else None
        if dns is None and upn and "@" in upn:
            dns = upn.rsplit("@", 1)[1].lower()
        users.append(DirectoryUser(
            sid=sid.upper() if sid else None, sam=sam, upn=upn, display_name=display, dn=dn,
            ou_path=_parent(dn) if dn else None, enabled=_enabled(get("enabled")), department=get("department"),
            dns_domain=dns, row=number,
        ))
    return Directory(tuple(users), source=str(path), netbios=netbios.strip().upper() if netbios else None)
