"""Settings from an optional TOML file (``evtrack.toml`` in the working directory, or ``--config``).

Flags override the file; the CLI merges them. Example::

    installed = 25
    tz = "Europe/Berlin"
    window = "month"
    scope = ["domain:CONTOSO"]     # or "ou:OU=Sales,DC=contoso,DC=com" (with --directory); absent = all

    [aliases]                      # FQDN or UPN suffix -> NetBIOS domain
    "contoso.local" = "CONTOSO"
    "contoso.com" = "CONTOSO"

    [exclude]                      # accounts not counted (reported as excluded, with the reason)
    names = ["CONTOSO\\\\adm-alice"]
    sids = ["S-1-5-21-1-2-3-500"]
    patterns = ["*\\\\svc_*"]

    [hosts]                        # which hosts count (Per User CALs are for RD Session Hosts)
    include = ["rdsh*"]            # glob patterns on host names; absent = every host
    exclude = ["dc*"]
    expected = ["RDSH01", "RDSH02"]  # session hosts that must have logs: one without is named, its windows partial
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evtrack.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_CONFIG_NAME = "evtrack.toml"
_KNOWN = {"installed", "tz", "window", "domains", "scope", "aliases", "exclude", "engine", "hosts"}


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
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Notepad and PowerShell write a BOM
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
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
    for key in ("tz", "window", "engine"):
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
    return FileConfig(
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
    )
