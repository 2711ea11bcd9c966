"""Settings resolved once: the config file, the environment and the flags merged into one :class:`ReportSettings`.

The zone text and the window text are parsed here (by :class:`~evtrack.usage.ReportSettings` itself, once); every
later stage reads ``settings.zone`` and ``settings.spec``. The environment is passed in (the CLI passes
``os.environ``), so this module reads nothing but the files it is told about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from evtrack.errors import ConfigError

if TYPE_CHECKING:
    from evtrack.config import FileConfig
    from evtrack.usage import ReportSettings


@dataclass(frozen=True)
class SettingFlags:
    """What the command line (and the EVTRACK_* variables typer maps to flags) asked for; None: not given."""

    config: Path | None = None
    installed: int | None = None
    tz: str | None = None
    window: str | None = None
    start: str | None = None
    end: str | None = None
    as_of: str | None = None
    scopes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    created_at: str | None = None
    directory: Path | None = None
    netbios: str | None = None
    keypacks: Path | None = None
    product_version: str | None = None
    hosts: tuple[str, ...] = ()
    exclude_hosts: tuple[str, ...] = ()
    expect_hosts: tuple[str, ...] = ()
    input_tz: str | None = None
    culture: str | None = None
    default_domain: str | None = None


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a report uses, and where they came from (for the CLI's ``time zone:`` line and warnings)."""

    report: ReportSettings
    file: FileConfig
    flags: SettingFlags

    def zone_line(self) -> str:
        """Which time zone cut the windows, and where it came from: a report must never leave that to guesswork."""
        used, flag, file = self.report.tz, self.flags.tz, self.file
        if flag:
            origin = "--tz/EVTRACK_TZ" + (f" {flag!r}" if flag != used else "")
        elif file.tz:
            origin = f"tz{'' if file.tz == used else f' {file.tz!r}'} in {file.path}"
        else:
            origin = "the default; set another with --tz or tz in evtrack.toml"
        return f"time zone: {used} ({origin})"


def resolve_settings(flags: SettingFlags, file: FileConfig, environ: Mapping[str, str]) -> ResolvedSettings:
    """Merge the loaded config ``file`` (see :func:`evtrack.config.load_config`), ``environ`` and ``flags`` (flags
    win). Errors come in the order the settings are read: zone, window, aliases, scope, directory, key packs."""
    from evtrack.hosts import HostSelection
    from evtrack.identity import Exclusions
    from evtrack.usage import ReportSettings
    from evtrack.windows import WindowSpec, parse_date, parse_moment, resolve_zone

    zone = resolve_zone(flags.tz or file.tz or "UTC")
    window_name = flags.window or file.window or "month"
    WindowSpec.parse(window_name)  # a wrong window is named before the slower settings are read
    alias_map = dict(file.aliases)
    for item in flags.aliases:
        if "=" not in item:
            raise ConfigError(f"--alias {item!r}: use fqdn=NETBIOS, e.g. contoso.local=CONTOSO")
        key, value = item.split("=", 1)
        alias_map[key.strip()] = value.strip()
    names, sids, patterns = list(file.exclude_names), list(file.exclude_sids), list(file.exclude_patterns)
    for item in flags.excludes:
        if item.upper().startswith("S-1-"):
            sids.append(item)
        elif set("*?[") & set(item):
            patterns.append(item)
        else:
            names.append(item)
    created: datetime | None = None
    if flags.created_at:
        created = parse_moment(flags.created_at, resolve_zone("UTC").info)
    elif environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
        created = datetime.fromtimestamp(int(environ["SOURCE_DATE_EPOCH"]), tz=timezone.utc)
    domains, ous = parse_scopes(list(flags.scopes) or list(file.scope) or [f"domain:{d}" for d in file.domains])
    if ous and flags.directory is None:
        raise ConfigError("an OU scope needs --directory (logon events carry no OU)")
    loaded_directory = None
    if flags.directory is not None:
        from evtrack.directory import load_directory

        loaded_directory = load_directory(flags.directory, netbios=flags.netbios)
    installed = flags.installed
    source = None if installed is None else (
        "EVTRACK_INSTALLED" if environ.get("EVTRACK_INSTALLED", "").strip() == str(installed) else "--installed")
    setting_warnings: list[str] = []
    if installed is None and flags.keypacks is not None:  # flags (--keypacks) override the config file
        from evtrack.keypacks import load_keypacks

        keypacks, product_version = flags.keypacks, flags.product_version
        packs = load_keypacks(keypacks)
        installed = packs.per_user_installed(product_version)
        source = f"key packs {keypacks}" + (f" ({product_version})" if product_version else "")
        if not packs.matches(product_version):
            setting_warnings.append(f"{keypacks}: no Per User CAL key pack" + (
                f" of product version {product_version!r}" if product_version else "") + ": installed counts as 0.")
    settings = ReportSettings(
        setting_warnings=tuple(setting_warnings),
        installed=installed if installed is not None else file.installed,
        installed_source=source if installed is not None else (
            f"config file {file.path}" if file.installed is not None else None),
        tz=zone.name,
        window=window_name,
        start=parse_date(flags.start) if flags.start else None,
        end=parse_date(flags.end) if flags.end else None,
        as_of=parse_moment(flags.as_of, zone.info) if flags.as_of else None,
        aliases=alias_map,
        exclusions=Exclusions.build(names, sids, patterns),
        domains=domains,
        ous=ous,
        directory=loaded_directory,
        created_at=created,
        hosts=HostSelection.build(list(flags.hosts) or list(file.hosts_include),
                                  [*file.hosts_exclude, *flags.exclude_hosts]),
        expected_hosts=flags.expect_hosts or file.hosts_expected,
        default_domain=flags.default_domain or file.default_domain,
        input_tz=resolve_zone(input_tz).name if (input_tz := flags.input_tz or file.input_tz) else None,
        culture=_culture(flags.culture or file.culture),
    )
    return ResolvedSettings(settings, file, flags)


def _culture(name: str | None) -> str | None:
    """A culture name as Windows writes it (``en-US``, ``de-DE``): language, and a region where given."""
    import re

    if name is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z]{2}|-[A-Za-z]{4}(-[A-Za-z]{2})?)?", name.strip()):
        raise ConfigError(f"culture {name!r}: use a culture name such as en-US, en-GB, de-DE or fr-FR")
    return name.strip()


def parse_scopes(items: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``all`` / ``domain:X`` / ``ou:DN`` → (domains, OUs); ``all`` alone means no filter."""
    domains: list[str] = []
    ous: list[str] = []
    for item in items:
        kind, _, value = item.partition(":")
        kind = kind.strip().lower()
        if kind == "all" and not value:
            continue
        if kind == "domain" and value.strip():
            domains.append(value.strip())
        elif kind == "ou" and value.strip():
            ous.append(value.strip())
        else:
            raise ConfigError(f"--scope {item!r}: use all, domain:NAME or ou:OU=...,DC=...")
    return tuple(domains), tuple(ous)
