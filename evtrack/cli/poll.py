"""``evtrack poll``: flags, the lines it prints and its exit code; the polling itself is :mod:`evtrack.poll`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrack.cli.common import announce_new_store
from evtrack.cli.errors import EXIT_ERROR, EXIT_USAGE, escape, fail, stderr

if TYPE_CHECKING:
    from evtrack.poll import PollRound


def _round_lines(round_: PollRound) -> list[str]:
    """One line per target: what was kept and where, or why not."""
    lines: list[str] = []
    for result in round_.results:
        if not result.ok:
            continue
        snapshot = result.snapshot
        kept = []
        if result.written is not None:
            kept.append(f"written {result.written}")
        if result.ingested:
            kept.append(f"ingested ({result.events_added:,} events added)")
        stamp = snapshot.polled_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        note = "no sessions; " if snapshot.no_sessions else ""
        lines.append(f"{stamp} {snapshot.target.host}: {note}{', '.join(kept)}")
        lines.extend(f"  warning: {warning}" for warning in snapshot.warnings)
    return lines


HELP = (
    "Take snapshots of the sessions alive now, from a Connection Broker or session hosts (Windows only).\n\n"
    "Polling sees only the sessions alive at each poll: a session shorter than the interval can be missed, so "
    "months with snapshots alone are lower bounds (docs/polling.md). Exit code 1 when any host failed (the others "
    "are polled all the same)."
)


def poll(
    broker: Annotated[
        list[str] | None,
        typer.Option("--broker", metavar="BROKER",
                     help="A Connection Broker to poll with Get-RDUserSession (repeatable): the sessions of its "
                     "whole deployment."),
    ] = None,
    server: Annotated[
        list[str] | None,
        typer.Option("--server", metavar="HOST",
                     help="A session host to poll with `query user /server:HOST` (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FOLDER",
                     help="Write each snapshot to this folder: rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv, "
                     "quser_<HOST>_<yyyyMMddTHHmmssZ>.txt."),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", metavar="PATH", help="Ingest each snapshot into this evtrack store (as `evtrack "
                     "ingest` would)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (for Task Scheduler).")] = False,
    interval: Annotated[
        int, typer.Option("--interval", min=1, metavar="MINUTES", help="Minutes between polls, until Ctrl-C.")
    ] = 15,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, metavar="SECONDS", help="Give up on a host after this long.")
    ] = 120.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only errors (and, after Ctrl-C, how many polls were written).")
    ] = False,
    command_template: Annotated[
        str | None,
        typer.Option("--command-template", hidden=True,
                     help="A stand-in for the real commands (tests; any OS): placeholders {kind} (broker|quser), "
                     "{host}, {polled_at}, {output}."),
    ] = None,
) -> None:
    """``evtrack poll`` (its --help is :data:`HELP`)."""
    from datetime import timedelta

    from evtrack import poll as polling

    template = polling.CommandTemplate.parse(command_template) if command_template is not None else None
    if not polling.runs_here(template):
        fail(polling.NEEDS_WINDOWS, EXIT_USAGE)
    settings = polling.PollSettings(
        polling.targets(broker or (), server or ()), out=out, store=store, template=template,
        interval=timedelta(minutes=interval), timeout=timeout,
    )
    if out is not None:
        polling.check_out(out)
    if store is not None and polling.check_store(store):
        announce_new_store(store, quiet)
    console = stderr()
    polls = written = failed = 0

    def show(round_: PollRound) -> None:
        nonlocal polls, written, failed
        polls += 1
        written += round_.kept
        failed += len(round_.failed)
        if not quiet:
            for line in _round_lines(round_):
                console.print(escape(line))
        for result in round_.failed:
            console.print(f"[bold red]error:[/] {escape(result.error or '')}")
        if not once and round_.finished - round_.started >= settings.interval:
            console.print(f"[bold yellow]warning:[/] poll {round_.number} took longer than the interval "
                          f"({interval} min): the next one is at the next slot of the schedule")

    if once:
        show(polling.poll_once(settings))
    else:
        if not quiet:
            console.print(escape(f"polling every {interval} min; Ctrl-C stops"))
        try:
            for round_ in polling.poll_rounds(settings):
                show(round_)
        except KeyboardInterrupt:
            console.print(escape(f"stopped: {polls} poll{'' if polls == 1 else 's'}, {written} snapshot"
                                 f"{'' if written == 1 else 's'} written, {failed} failed"))
    if failed:
        raise typer.Exit(EXIT_ERROR)
