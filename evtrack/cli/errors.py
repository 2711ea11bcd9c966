"""Exit codes and the one place an :class:`~evtrack.errors.EvtrackError` becomes a message and an exit code.

Every command lets an ``EvtrackError`` propagate; :class:`Commands` (the root command group) catches it, prints
``error: <message>`` on stderr and exits with :data:`EXIT_ERROR`. Commands that end otherwise call :func:`fail`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

from evtrack.errors import EvtrackError

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click import Context

EXIT_ERROR = 1
"""An error (bad input, setting or store), or with --strict: anything not read or a warning."""
EXIT_USAGE = 2
"""The command cannot run as asked here: ``evtrack poll`` elsewhere than on Windows (click's usage errors are 2
too)."""
EXIT_OVER = 3
"""``report --check``: more users than installed CALs."""
EXIT_INCOMPLETE = 4
"""``report --check``: the logs do not cover the period, or the verdict is unknown."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""


class Commands(TyperGroup):
    """The root command group: the one place an :class:`EvtrackError` becomes a message and an exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvtrackError as exc:
            fail(str(exc))


def stderr() -> Console:
    """Where messages, summaries and warnings go (stdout is kept for the output)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    stderr().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)

