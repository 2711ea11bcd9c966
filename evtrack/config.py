"""Settings from an optional TOML file (``evtrack.toml`` in the working directory, or ``--config``).

Flags override the file; the CLI merges them. Example::

    installed = 25
    tz = "Europe/Berlin"
    window = "month"
    scope = ["domain:CONTOSO"]     # or "ou:OU=Sales,DC=contoso,DC=com" (with --directory); absent = all
    default_domain = "CONTOSO"     # the domain of bare names (query user) that join no DOMAIN\\user in the inputs

    [aliases]                      # FQDN or UPN suffix -> NetBIOS domain
    "contoso.local" = "CONTOSO"
    "contoso.com" = "CONTOSO"

    [exclude]                      # accounts not counted (reported as excluded, with the reason)
    names = ['CONTOSO\\adm-alice']   # single quotes: a backslash is just a backslash
    sids = ['S-1-5-21-1-2-3-500']
    patterns = ['*\\svc_*']

    [hosts]                        # which hosts count (Per User CALs are for RD Session Hosts)
    include = ['rdsh*']            # glob patterns on host names; absent = every host
    exclude = ['dc*']
    expected = ['RDSH01', 'RDSH02']  # session hosts that must have logs: one without is named, its windows partial

    [inputs]                       # snapshots and exports that write local times without an offset
    tz = "Europe/Berlin"           # the zone of the machine that wrote them; absent = the report's tz
    culture = "de-DE"              # their date format where the data does not decide day/month order

In a double-quoted TOML string a backslash starts an escape: ``"CONTOSO\\bob"`` holds a backspace, not ``\\b``. Such
values load (TOML allows them) but match nobody, so :func:`load_config` returns a warning for every name, pattern,
alias or scope that holds a control character. The file may be UTF-8 (with or without a BOM) or UTF-16 with a BOM
(what Windows PowerShell's ``>`` writes); anything else is a :class:`ConfigError` that says to save it as UTF-8.
"""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evtrack.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_CONFIG_NAME = "evtrack.toml"
_KNOWN = {"installed", "tz", "window", "domains", "scope", "aliases", "exclude", "engine", "hosts", "inputs",
          "default_domain"}
#: How TOML writes the control characters a stray backslash produces (``\b`` in ``CONTOSO\bob``).
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_CONTROL_NAMES = {"\b": "a backspace", "\t": "a tab", "\n": "a line break", "\f": "a form feed",
                  "\r": "a carriage return"}


@dataclass(frozen=True)
class FileConfig:
    """What a config file says; None where it says nothing."""

    path: Path | None = None
    installed: int | None = None
    tz: str | None = None
    window: str | None = None
    engine: str | None = None
    domains: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    exclude_names: tuple[str, ...] = ()
    exclude_sids: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    hosts_include: tuple[str, ...] = ()
    hosts_exclude: tuple[str, ...] = ()
    hosts_expected: tuple[str, ...] = ()
    default_domain: str | None = None
    input_tz: str | None = None
    culture: str | None = None
    warnings: tuple[str, ...] = ()
    """What loaded but is probably not what was meant (a backslash read as a TOML escape); the CLI prints them."""


def _strings(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {where} must be a list of strings")
    return tuple(value)


def load_config(path: Path | None, *, cwd: Path | None = None) -> FileConfig:
    """Read ``path``, or ``evtrack.toml`` in ``cwd`` when it exists; an empty config otherwise."""
    if path is None:
        candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
        if not candidate.is_file():
            return FileConfig()
        path = candidate
    try:
        data = tomllib.loads(_decode(path.read_bytes(), path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if "escape" in str(exc).lower() or "\\" in str(exc):
            hint = " (write a backslash as \\\\ in double quotes, or use single quotes: 'CONTOSO\\alice')"
        raise ConfigError(f"{path}: not valid TOML: {exc}{hint}") from None
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(_KNOWN))})")
    installed = data.get("installed")
    if installed is not None and (not isinstance(installed, int) or isinstance(installed, bool) or installed < 0):
        raise ConfigError(f"{path}: installed must be a whole number >= 0")
    for key in ("tz", "window", "engine", "default_domain"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string")
    if "window" in data:
        from evtrack.windows import WindowSpec

        try:
            WindowSpec.parse(data["window"])
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ConfigError(f"{path}: [aliases] must map names to NetBIOS domain strings")
    exclude = data.get("exclude", {})
    if not isinstance(exclude, dict) or set(exclude) - {"names", "sids", "patterns"}:
        raise ConfigError(f"{path}: [exclude] takes names, sids and patterns")
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict) or set(hosts) - {"include", "exclude", "expected"}:
        raise ConfigError(f"{path}: [hosts] takes include, exclude and expected")
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict) or set(inputs) - {"tz", "culture"} or not all(
            isinstance(v, str) for v in inputs.values()):
        raise ConfigError(f"{path}: [inputs] takes tz and culture (strings)")
    loaded = FileConfig(
        path=path,
        installed=installed,
        tz=data.get("tz"),
        window=data.get("window"),
        engine=data.get("engine"),
        domains=_strings(data.get("domains", []), "domains", path),
        scope=_strings(data.get("scope", []), "scope", path),
        aliases=dict(aliases),
        exclude_names=_strings(exclude.get("names", []), "exclude.names", path),
        exclude_sids=_strings(exclude.get("sids", []), "exclude.sids", path),
        exclude_patterns=_strings(exclude.get("patterns", []), "exclude.patterns", path),
        hosts_include=_strings(hosts.get("include", []), "hosts.include", path),
        hosts_exclude=_strings(hosts.get("exclude", []), "hosts.exclude", path),
        hosts_expected=_strings(hosts.get("expected", []), "hosts.expected", path),
        default_domain=data.get("default_domain"),
        input_tz=inputs.get("tz"),
        culture=inputs.get("culture"),
    )
    return replace(loaded, warnings=tuple(_control_warnings(loaded)))


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (a BOM is dropped: Notepad writes one) or UTF-16 with a BOM (Windows PowerShell's ``>``)."""
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    if encoding != "utf-16" and b"\x00" in raw:
        raise ConfigError(f"{path}: holds NUL bytes (UTF-16 without a byte order mark?): save it as UTF-8 "
                          "(in PowerShell: Set-Content -Encoding utf8)")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise ConfigError(f"{path}: not {name} text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): save it "
                          "as UTF-8 (in PowerShell: Set-Content -Encoding utf8)") from None
    return text


def _control_warnings(config: FileConfig) -> list[str]:
    """One warning per name, pattern, alias or scope value holding a control character (a misread backslash)."""
    values: list[tuple[str, str]] = [("domains", v) for v in config.domains]
    values += [("scope", v) for v in config.scope]
    for key, value in config.aliases.items():
        values += [("[aliases] name", key), (f"[aliases] \"{_shown(key)}\"", value)]
    values += [("exclude.names", v) for v in config.exclude_names]
    values += [("exclude.sids", v) for v in config.exclude_sids]
    values += [("exclude.patterns", v) for v in config.exclude_patterns]
    values += [("hosts.include", v) for v in config.hosts_include]
    values += [("hosts.exclude", v) for v in config.hosts_exclude]
    values += [("hosts.expected", v) for v in config.hosts_expected]
    warnings = []
    for where, value in values:
        controls = [c for c in dict.fromkeys(value) if _is_control(c)]
        if not controls:
            continue
        what = ", ".join(_CONTROL_NAMES.get(c, f"control character U+{ord(c):04X}") for c in controls)
        meant = _shown(value)
        fix = f"'{meant}' (single quotes)" if "'" not in meant else None
        doubled = '"' + meant.replace("\\", "\\\\") + '"'
        warnings.append(
            f"{config.path}: {where} \"{meant}\" was read with {what} (in double quotes TOML reads a "
            "backslash as an escape), so it is not the text you typed and matches nothing; write "
            f"{fix + ' or ' if fix else ''}{doubled} (doubled backslashes)"
        )
    return warnings


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


def _shown(value: str) -> str:
    """``value`` with its control characters written as TOML escapes, as it probably stood in the file."""
    return "".join(_ESCAPES.get(c, f"\\u{ord(c):04X}" if _is_control(c) else c) for c in value)
