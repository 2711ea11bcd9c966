"""The Per User CALs installed on an RD licence server, from an export of its licence key packs.

Read from ``Get-CimInstance Win32_TSLicenseKeyPack | Export-Csv`` (or ``Get-WmiObject``, whose export adds
``__GENUS``... columns and writes dates as DMTF strings). The class (Microsoft, *Win32_TSLicenseKeyPack class*,
TlsWmiProv.mof) has KeyPackId, Description, KeyPackType (0 unknown, 1 retail, 2 volume, 3 concurrent,
4 temporary, 5 open licence, 6 not supported), ProductType (0 per device, 1 per user, 2 not valid),
ProductVersion ("Windows Server 2016"...), ProductVersionID, TotalLicenses, IssuedLicenses, AvailableLicenses,
ExpirationDate and TypeAndModel ("RDS Per User CAL", "TS Per Device CAL"...).

Counted as installed: Per User packs (ProductType 1, or "Per User" in TypeAndModel when ProductType is absent)
that are not temporary and not built-in. The built-in "Existing Windows License" pack reports 4294967295
(2^32 - 1, "unlimited") licences and is never added as a number.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from evtrack.directory import cell, pick_columns, read_export_csv
from evtrack.errors import SourceError

UNLIMITED = 4_294_967_295
"""TotalLicenses of a built-in pack: uint32 all ones, meaning "unlimited", not a count."""
KEY_PACK_TYPE_TEMPORARY = 4
PRODUCT_TYPE_PER_DEVICE = 0
PRODUCT_TYPE_PER_USER = 1

COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("keypackid",),
    "key_pack_type": ("keypacktype",),
    "product_type": ("producttype",),
    "product_version": ("productversion",),
    "product_version_id": ("productversionid",),
    "type_and_model": ("typeandmodel",),
    "description": ("description",),
    "total": ("totallicenses",),
    "available": ("availablelicenses",),
    "issued": ("issuedlicenses",),
    "expires": ("expirationdate",),
}
_DMTF_RE = re.compile(r"^(\d{14})\.(\d{6})([+-])(\d{3})$")


@dataclass(frozen=True)
class KeyPack:
    """One licence key pack as the licence server lists it."""

    key_pack_id: str
    key_pack_type: int | None
    product_type: int | None
    product_version: str
    product_version_id: int | None
    type_and_model: str
    description: str
    total: int | None
    """Licences in the pack; None for a built-in pack's "unlimited" (4294967295)."""
    available: int | None
    issued: int | None
    expires: datetime | None
    """ExpirationDate when it is a DMTF or ISO date; None otherwise (see ``expires_text``)."""
    expires_text: str
    per_user: bool
    temporary: bool
    built_in: bool

    @property
    def counted(self) -> bool:
        """Counts towards the Per User CALs installed."""
        return self.per_user and not self.temporary and not self.built_in and self.total is not None

    @property
    def kind(self) -> str:
        """Why a pack is or is not counted, in a word or two."""
        if self.built_in:
            return "built-in"
        if self.temporary:
            return "temporary"
        return "per user" if self.per_user else "per device"


@dataclass(frozen=True)
class VersionTotals:
    """Per User CALs of one product version."""

    product_version: str
    installed: int
    issued: int
    available: int
    packs: int


@dataclass(frozen=True)
class KeyPacks:
    """The key packs of one licence server export, and the Per User CALs they hold."""

    packs: tuple[KeyPack, ...]
    source: str = ""

    def _counted(self, product_version: str | None) -> list[KeyPack]:
        return [p for p in self.packs if p.counted and _version_matches(p.product_version, product_version)]

    def matches(self, product_version: str | None) -> bool:
        """Whether any counted Per User key pack is of this product version (any, when None)."""
        return bool(self._counted(product_version))

    def per_user_installed(self, product_version: str | None = None) -> int:
        """Per User CALs installed (all product versions, or those matching e.g. "2019" / "Windows Server 2019")."""
        return sum(p.total or 0 for p in self._counted(product_version))

    def per_user_issued(self, product_version: str | None = None) -> int:
        return sum(p.issued or 0 for p in self._counted(product_version))

    def by_product_version(self) -> tuple[VersionTotals, ...]:
        groups: dict[str, list[KeyPack]] = defaultdict(list)
        for pack in self.packs:
            if pack.counted:
                groups[pack.product_version].append(pack)
        return tuple(
            VersionTotals(version, sum(p.total or 0 for p in packs), sum(p.issued or 0 for p in packs),
                          sum(p.available or 0 for p in packs), len(packs))
            for version, packs in sorted(groups.items())
        )

    @property
    def ignored(self) -> tuple[KeyPack, ...]:
        """Packs not counted (per device, temporary, built-in), to show the reader what was left out."""
        return tuple(p for p in self.packs if not p.counted)


def _version_matches(version: str, wanted: str | None) -> bool:
    if wanted is None or not wanted.strip():
        return True
    have, want = version.strip().lower(), wanted.strip().lower()
    return have == want or re.search(rf"(?<![\w]){re.escape(want)}(?![\w])", have) is not None


def parse_wmi_datetime(text: str) -> datetime | None:
    """DMTF (``20380119031407.000000-000``, Get-WmiObject) or ISO 8601; None for other (culture-formatted) text."""
    text = text.strip()
    match = _DMTF_RE.match(text)
    if match:
        try:
            minutes = int(match.group(4)) * (1 if match.group(3) == "+" else -1)
            offset = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
            return datetime.strptime(match.group(1) + match.group(2) + offset, "%Y%m%d%H%M%S%f%z")
        except ValueError:
            return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def load_keypacks(path: Path) -> KeyPacks:
    """Read a ``Win32_TSLicenseKeyPack`` CSV export."""
    path = Path(path)
    header, rows = read_export_csv(path)
    cols = pick_columns(header, COLUMNS)
    missing = [name for name, column in (("TotalLicenses", "total"),) if column not in cols]
    if "product_type" not in cols and "type_and_model" not in cols:
        missing.append("ProductType or TypeAndModel")
    if missing:
        seen = ", ".join(h for h in header if h) or "none"
        raise SourceError(path, "not a Win32_TSLicenseKeyPack export: missing column(s) "
                          f"{', '.join(missing)}; columns: {seen}")
    packs = []
    for number, row in enumerate(rows, start=1):
        def text(name: str, row: dict[str, str] = row) -> str:
            return cell(row, cols.get(name, ())) or ""

        def count(name: str, number: int = number) -> int | None:
            value = text(name)
            if not value:
                return None
            try:
                parsed = int(value)
            except ValueError:
                raise SourceError(path, f"key pack row {number}: {COLUMNS[name][0]} is not a number: "
                                  f"{value[:40]!r}") from None
            if parsed < 0:
                raise SourceError(path, f"key pack row {number}: {COLUMNS[name][0]} is negative: {parsed}")
            return parsed

        total = count("total")
        product_type = count("product_type")
        key_pack_type = count("key_pack_type")
        model = text("type_and_model")
        description = text("description")
        words = f"{model} {description}".lower()
        if product_type in (PRODUCT_TYPE_PER_USER, PRODUCT_TYPE_PER_DEVICE):
            per_user = product_type == PRODUCT_TYPE_PER_USER
        else:
            per_user = "per user" in model.lower()
        built_in = total == UNLIMITED or "built-in" in words or "existing windows license" in words
        temporary = key_pack_type == KEY_PACK_TYPE_TEMPORARY or "temporary" in words
        available, issued = count("available"), count("issued")
        packs.append(KeyPack(
            key_pack_id=text("id") or str(number), key_pack_type=key_pack_type, product_type=product_type,
            product_version=text("product_version"), product_version_id=count("product_version_id"),
            type_and_model=model, description=description,
            total=None if total == UNLIMITED else total,
            available=None if available == UNLIMITED else available,
            issued=issued, expires=parse_wmi_datetime(text("expires")), expires_text=text("expires"),
            per_user=per_user, temporary=temporary, built_in=built_in,
        ))
    return KeyPacks(tuple(packs), source=str(path))
