"""The evtrack command line: the only package that prints, reads flags and environment, or picks exit codes.

``app`` is the typer application (``evtrack.cli:main`` is the console script, ``python -m evtrack`` runs it too).
The commands live in :mod:`~evtrack.cli.report` (report, explain, config), :mod:`~evtrack.cli.events` (events,
sample), :mod:`~evtrack.cli.store` (ingest, reports, store) and :mod:`~evtrack.cli.poll` (poll); options shared by
several commands in :mod:`~evtrack.cli.options`; errors and exit codes in :mod:`~evtrack.cli.errors`. Heavy modules
(pyarrow, pandas, parsers) are imported inside the commands so that ``evtrack --help`` is instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from evtrack import __version__
from evtrack.cli import events as _events
from evtrack.cli import poll as _poll
from evtrack.cli import report as _report
from evtrack.cli import store as _store
from evtrack.cli.errors import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OVER, Commands

__all__ = ["EXIT_ERROR", "EXIT_INCOMPLETE", "EXIT_INTERRUPTED", "EXIT_OVER", "app", "main"]

app = typer.Typer(
    cls=Commands,
    name="evtrack",
    help="Estimate RDS Per User CAL usage from exported Windows logon event logs (.evtx or XML).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"evtrack {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Estimate RDS Per User CAL usage from exported Windows logon event logs (.evtx or XML)."""


# the order of --help: commands, then groups
app.command()(_events.events)
app.command()(_report.report)
app.command()(_report.explain)
app.command()(_events.sample)
app.command("ingest")(_store.ingest)
app.command(help=_poll.HELP)(_poll.poll)
app.add_typer(_report.config_app, name="config")
app.add_typer(_store.reports_app, name="reports")
app.add_typer(_store.store_app, name="store")


#: Arrow's allocator for this process and the workers it starts, unless ARROW_DEFAULT_MEMORY_POOL names another:
#: the C library's malloc. pyarrow's default (mimalloc) kept 30-60 MB more resident in a report over the dense
#: benchmark sets, memory it had freed, for no measurable gain in speed (benchmarks/README.md).
ARROW_MEMORY_POOL = "system"


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)  # read when pyarrow is first imported
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")
    app()

