"""The config file: backslashes read as TOML escapes are warned about, encodings Windows writes load, `config show`
prints TOML that loads back as the same settings, and every TOML example in the docs is what we recommend."""

from __future__ import annotations

import codecs
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.config import FileConfig, load_config
from evtrack.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str, name: str = "evtrack.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- backslashes -----------------------------------------------------------------------------------------------------


def test_a_backslash_read_as_an_escape_is_warned_about(tmp_path: Path) -> None:
    path = _write(tmp_path, '[exclude]\nnames = ["CONTOSO\\bob"]\n')
    loaded = load_config(path)
    assert loaded.exclude_names == ("CONTOSO\bob",)
    assert loaded.warnings == (
        f'{path}: exclude.names "CONTOSO\\bob" was read with a backspace (in double quotes TOML reads a backslash '
        "as an escape), so it is not the text you typed and matches nothing; write 'CONTOSO\\bob' (single quotes) "
        'or "CONTOSO\\\\bob" (doubled backslashes)',
    )


@pytest.mark.parametrize(("toml", "where", "shown", "what"), [
    ('[exclude]\npatterns = ["*\\\\svc_*", "*\\tmp*"]\n', "exclude.patterns", "*\\tmp*", "a tab"),
    ('[exclude]\nsids = ["S-1-5-21\\n"]\n', "exclude.sids", "S-1-5-21\\n", "a line break"),
    ('[exclude]\nnames = ["\\frank\\richard"]\n', "exclude.names", "\\frank\\richard",
     "a form feed, a carriage return"),
    ('scope = ["ou:OU=Sales\\b"]\n', "scope", "ou:OU=Sales\\b", "a backspace"),
    ('domains = ["CONTOSO\\u0001"]\n', "domains", "CONTOSO\\u0001", "control character U+0001"),
    ('[aliases]\n"contoso.local" = "CONTOSO\\t"\n', '[aliases] "contoso.local"', "CONTOSO\\t", "a tab"),
    ('[aliases]\n"contoso\\tlocal" = "CONTOSO"\n', "[aliases] name", "contoso\\tlocal", "a tab"),
])
def test_every_name_pattern_alias_and_scope_is_checked(tmp_path: Path, toml: str, where: str, shown: str,
                                                       what: str) -> None:
    loaded = load_config(_write(tmp_path, toml))
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(f'{tmp_path / "evtrack.toml"}: {where} "{shown}" was read with {what} (')


def test_the_warning_is_printed_on_stderr_and_the_fix_silences_it(tmp_path: Path) -> None:
    bad = _write(tmp_path, '[exclude]\nnames = ["CONTOSO\\bob"]\n', "bad.toml")
    result = runner.invoke(app, ["config", "show", "--config", str(bad)])
    assert result.exit_code == 0
    assert result.stderr.startswith(f'warning: {bad}: exclude.names "CONTOSO\\bob" was read with a backspace')
    assert "'CONTOSO\\bob' (single quotes)" in result.stderr
    for fixed in ("names = ['CONTOSO\\bob']\n", 'names = ["CONTOSO\\\\bob"]\n'):
        good = _write(tmp_path, "[exclude]\n" + fixed, "good.toml")
        assert load_config(good).exclude_names == ("CONTOSO\\bob",) and load_config(good).warnings == ()
        result = runner.invoke(app, ["config", "show", "--config", str(good)])
        assert result.exit_code == 0 and result.stderr == ""
        assert "names = ['contoso\\bob']" in result.stdout


# --- encodings -------------------------------------------------------------------------------------------------------

TEXT = ("installed = 4\ntz = 'Europe/Berlin'\n[aliases]\n'müller.example' = 'MÜLLER'\n"
        "[exclude]\nnames = ['CONTOSO\\bob']\n")


@pytest.mark.parametrize(("encoding", "bom"), [
    ("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
])
def test_utf8_and_utf16_with_a_bom_load_alike(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = tmp_path / "evtrack.toml"
    path.write_bytes(bom + TEXT.replace("\n", "\r\n").encode(encoding))  # PowerShell writes CRLF
    loaded = load_config(path)
    assert loaded == FileConfig(path=path, installed=4, tz="Europe/Berlin", aliases={"müller.example": "MÜLLER"},
                                exclude_names=("CONTOSO\\bob",))


@pytest.mark.parametrize(("raw", "problem"), [
    (TEXT.encode("cp1252"), f"not UTF-8 text (byte 0xfc at offset {TEXT.index('ü')})"),
    (TEXT.encode("utf-16-le"), "holds NUL bytes (UTF-16 without a byte order mark?)"),
    (codecs.BOM_UTF16_LE + b"i\x00n\x00s", "not UTF-16 text (byte 0x73 at offset 6)"),
])
def test_other_encodings_are_a_clear_error(tmp_path: Path, raw: bytes, problem: str) -> None:
    path = tmp_path / "evtrack.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {problem}: save it as UTF-8 (in PowerShell: Set-Content -Encoding utf8)"


def test_powershell_redirect_reaches_the_report_settings(tmp_path: Path) -> None:
    path = tmp_path / "evtrack.toml"
    path.write_bytes(codecs.BOM_UTF16_LE + "installed = 12\r\n".encode("utf-16-le"))
    result = runner.invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0 and "\ninstalled = 12\n" in result.stdout


# --- config show round-trips -----------------------------------------------------------------------------------------

CONFIGS = [
    "",
    TEXT,
    "installed = 0\nwindow = 'rolling:30d'\nengine = 'python-evtx'\n"
    "scope = ['domain:CONTOSO', 'domain:fabrikam.com']\n",
    "domains = ['CONTOSO']\n[aliases]\n\"it's.example\" = 'IT'\n[exclude]\nsids = ['s-1-5-21-1-2-3-500']\n"
    "patterns = ['*\\\\svc_*', \"o'*\"]\nnames = [\"CONTOSO\\bob\", 'tab\\there']\n",
]
FLAGS = [
    [],
    ["--installed", "30", "--tz", "W. Europe Standard Time", "--window", "week"],
    ["--exclude", "CONTOSO\\adm-alice", "--exclude", "S-1-5-21-9-9-9-500", "--exclude", "svc_*",
     "--alias", "contoso.com=CONTOSO", "--scope", "domain:FABRIKAM"],
    ["--tz", "europe/london", "--scope", "all"],
]


@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("flags", range(len(FLAGS)))
def test_config_show_prints_toml_that_loads_as_the_same_settings(tmp_path: Path, config: int, flags: int) -> None:
    source = _write(tmp_path, CONFIGS[config], "source.toml")
    first = runner.invoke(app, ["config", "show", "--config", str(source), *FLAGS[flags]])
    assert first.exit_code == 0, first.output
    parsed = tomllib.loads(first.stdout)
    assert set(parsed) <= {"installed", "tz", "window", "engine", "scope", "aliases", "exclude", "hosts"}
    shown = _write(tmp_path, first.stdout, "shown.toml")
    loaded = load_config(shown)
    assert loaded.tz == parsed["tz"] and loaded.exclude_names == tuple(parsed["exclude"]["names"])
    # the shown file, loaded without flags, is a fixed point: the same settings again
    second = runner.invoke(app, ["config", "show", "--config", str(shown)])
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[1:] == first.stdout.splitlines()[1:]
    assert first.stdout.splitlines()[0] == f"# config file: {source}"


def test_config_show_values(tmp_path: Path) -> None:
    source = _write(tmp_path, TEXT, "source.toml")
    result = runner.invoke(app, ["config", "show", "--config", str(source), "--tz", "GMT Standard Time",
                                 "--exclude", "svc_*"])
    assert tomllib.loads(result.stdout) == {
        "installed": 4, "tz": "Europe/London", "window": "month", "engine": "evtx", "scope": [],
        "aliases": {"müller.example": "MÜLLER"},
        "exclude": {"names": ["contoso\\bob"], "sids": [], "patterns": ["svc_*"]},
        "hosts": {"include": [], "exclude": [], "expected": []},
    }
    unset = runner.invoke(app, ["config", "show", "--config", str(_write(tmp_path, "", "empty.toml"))])
    assert "\n# installed = (not set)\n" in unset.stdout and "installed" not in tomllib.loads(unset.stdout)


# --- the docs recommend what works ---------------------------------------------------------------------------------


def _toml_examples() -> list[tuple[str, str]]:
    found = [("sample_logs/evtrack.toml", (ROOT / "sample_logs" / "evtrack.toml").read_text(encoding="utf-8"))]
    for doc in [ROOT / "README.md", ROOT / "sample_logs" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        found += [(doc.relative_to(ROOT).as_posix(), block) for block in re.findall(r"```toml\n(.*?)```", text, re.S)]
    return found


def test_every_toml_example_loads_without_warnings_and_uses_single_quotes(tmp_path: Path) -> None:
    examples = _toml_examples()
    assert {name for name, _ in examples} >= {"README.md", "sample_logs/evtrack.toml"}
    for name, block in examples:
        loaded = load_config(_write(tmp_path, block))
        assert loaded.warnings == (), name
        assert not re.search(r'"[^"\n]*\\[^"\n]*"', block), f"{name}: a backslash inside double quotes"
