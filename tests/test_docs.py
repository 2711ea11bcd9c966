"""Docs cannot drift from --help: docs/cli.md is regenerated and compared; README names every command."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _gen().render()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `python docs/gen_cli.py`"


def test_readme_names_every_top_level_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in _gen().command_paths():
        if len(path) == 1 or (len(path) == 2 and path[0] == "config"):
            assert f"`evtrack {' '.join(path)}" in readme, f"README does not mention evtrack {' '.join(path)}"


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = quick.split("```")[1::2]
    commands = [line for block in blocks for line in block.strip().splitlines() if line.strip()]
    assert commands == [
        "python -m pip install . && evtrack report sample_logs --config sample_logs/evtrack.toml",
        'python -m pip install ".[test]" && python -m pytest',
    ]
