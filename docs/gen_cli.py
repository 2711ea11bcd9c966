"""Regenerate docs/cli.md from the commands' --help (tests/test_docs.py fails when it is out of date).

    python docs/gen_cli.py
"""

from __future__ import annotations

import os
from pathlib import Path

HEADER = "# Command reference\n\nGenerated from `--help` by `python docs/gen_cli.py`; a test keeps it in sync.\n"


def command_paths() -> list[list[str]]:
    import typer.main

    from evtrack.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(group, [])
    return paths


def render() -> str:
    from typer.testing import CliRunner

    from evtrack.cli import app

    runner = CliRunner()
    parts = [HEADER]
    for path in command_paths():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"},
                               prog_name="evtrack")
        title = " ".join(["evtrack", *path])
        body = "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n")
        parts.append(f"## `{title}`\n\n```text\n{body}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    (Path(__file__).resolve().parent / "cli.md").write_text(render(), encoding="utf-8")
