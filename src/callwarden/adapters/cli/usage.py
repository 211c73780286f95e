"""Usage commands: `ingest FILE`, `ingest-watch FOLDER`, `dead-letters ...` and `usage prune`.

Exit codes: 0 when everything was stored (or already was), 3 when some units became dead
letters (they are kept; `callwarden dead-letters list` shows them), 2 for a refusal (a file
that is not UTF-8 text, an unknown dead letter, a dead letter that is not open).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from callwarden.adapters.usage_files import ingest_file
from callwarden.adapters.watch import FolderWatcher
from callwarden.core.errors import CallwardenError
from callwarden.core.usage.record import UsageFormat
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.usage import (
    DeadLetterQuery,
    DeadLetterStatus,
    IngestResult,
    UsageIngestion,
)
from callwarden.settings import Settings

dead_letter_app = typer.Typer(help="Usage input that could not be stored: list, show, fix, replay.")
usage_app = typer.Typer(help="Stored usage records.")

out = Console(soft_wrap=True)
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides CALLWARDEN_DATABASE_URL", show_default=False),
]

T = TypeVar("T")

FormatOption = Annotated[
    UsageFormat, typer.Option("--format", "-f", help="How the file is written")
]
EXIT_DEAD_LETTERS = 3


@contextmanager
def _acting(database_url: str | None) -> Iterator[Platform]:
    """The platform for one command: a refusal prints its reason and exits 2; always closed."""
    platform = Platform.build(Settings(database_url=database_url) if database_url else Settings())
    try:
        yield platform
    except CallwardenError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err.print(f"[red]error{where}:[/red] {exc.message}", markup=True, highlight=False)
        raise typer.Exit(code=2) from exc
    finally:
        platform.close()


def _run(platform: Platform, work: Callable[[], Awaitable[T]]) -> T:
    """Run async `work` on the platform, closing the usage stream afterwards."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await platform.stream.close()

    return anyio.run(main)


def _summary(result: IngestResult) -> str:
    return (
        f"stored {result.stored}, duplicates {result.duplicates}, "
        f"dead letters {result.dead_lettered}"
    )


def _report(result: IngestResult) -> None:
    """Print the summary; exit 3 when something became a dead letter."""
    out.print(_summary(result))
    if result.dead_lettered:
        out.print(
            f"[yellow]{result.dead_lettered} unit(s) kept as dead letters[/yellow]: "
            + ", ".join(result.dead_letter_ids[:10])
            + (" ..." if len(result.dead_letter_ids) > 10 else "")
        )
        out.print("see them with: callwarden dead-letters list --status open")
        raise typer.Exit(code=EXIT_DEAD_LETTERS)


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: FormatOption,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Worker processes. On PostgreSQL each reads and stores whole batches on its "
            "own connection (default 2, at most one per core); on SQLite they only read units "
            "while this process stores (default 0). 0: this process does everything",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Ingest a usage file (a progress bar follows the bytes read and committed)."""
    total_bytes = file.stat().st_size
    with _acting(database_url) as platform:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
        )
        with Progress(*columns, console=out, transient=False) as progress:
            task = progress.add_task(file.name, total=total_bytes, counts="")

            def advance(read: int, so_far: IngestResult) -> None:
                progress.update(task, completed=read, counts=_summary(so_far))

            result = _run(
                platform,
                lambda: ingest_file(
                    platform.usage, file, fmt, on_progress=advance, workers=workers
                ),
            )
            progress.update(task, completed=total_bytes, counts=_summary(result))
    _report(result)


def ingest_watch(
    folder: Annotated[Path, typer.Argument(file_okay=False)],
    fmt: Annotated[
        UsageFormat,
        typer.Option("--format", "-f", help="Format of files directly in the folder"),
    ] = UsageFormat.CALLWARDEN_CSV,
    interval: Annotated[float, typer.Option(help="Seconds between scans", min=0.1)] = 2.0,
    settle: Annotated[
        float, typer.Option(help="Seconds a file must stay unchanged to count as complete", min=0)
    ] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Ingest the complete files there now, then stop")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Watch a folder: ingest each complete usage file, then move it to done/ or failed/.

    Subfolders named after a format (asterisk-csv/, freeswitch-json/, ...) hold files of that
    format. Stop with Ctrl-C.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with _acting(database_url) as platform:
        watcher = FolderWatcher(
            platform.usage,
            folder,
            default_format=fmt,
            interval_s=interval,
            settle_s=0 if once else settle,
            keep_bytes=platform.settings.usage_max_body_bytes,
        )
        if once:
            outcomes = _run(platform, watcher.scan_once)
            for o in outcomes:
                note = f" ({o.error})" if o.error else ""
                out.print(f"{o.source.name} -> {o.moved_to}: {_summary(o.result)}{note}")
            if not outcomes:
                out.print("no complete usage files")
            return
        out.print(f"watching {folder} (Ctrl-C to stop)")
        try:
            _run(platform, watcher.run)
        except KeyboardInterrupt:
            out.print("stopped")


# -- dead letters ---------------------------------------------------------------------------------
@dead_letter_app.command("list")
def dead_letters_list(
    status: Annotated[DeadLetterStatus | None, typer.Option(help="open, replayed, discarded")] = (
        DeadLetterStatus.OPEN
    ),
    fmt: Annotated[UsageFormat | None, typer.Option("--format", "-f", help="Format")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first", min=1)] = 100,
    database_url: DatabaseUrl = None,
) -> None:
    """List dead letters, newest first (open ones unless --status says otherwise)."""
    with _acting(database_url) as platform:
        page = platform.usage.list_dead_letters(
            SYSTEM, DeadLetterQuery(status=status, format=fmt), PageRequest(limit=limit)
        )
    table = Table("received", "format", "position", "status", "reason")
    table.add_column("id", no_wrap=True)
    for d in page.items:
        table.add_row(
            d.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.format.value,
            d.position,
            d.status.value,
            d.reason,
            d.id,
        )
    out.print(table)
    out.print(f"{len(page.items)} of {page.total}")


@dead_letter_app.command("show")
def dead_letters_show(dead_letter_id: str, database_url: DatabaseUrl = None) -> None:
    """Show a dead letter: where it came from, why it failed, and its raw text."""
    with _acting(database_url) as platform:
        d = platform.usage.get_dead_letter(SYSTEM, dead_letter_id)
    out.print(f"id:        {d.id}")
    out.print(f"received:  {d.received_at.isoformat()}")
    out.print(f"format:    {d.format.value}")
    out.print(f"position:  {d.position}")
    out.print(f"status:    {d.status.value}")
    if d.replayed_at:
        out.print(f"replayed:  {d.replayed_at.isoformat()}")
    out.print(f"reason:    {d.reason}", markup=False)
    out.rule("raw text")
    out.print(d.raw_text, markup=False, highlight=False)


@dead_letter_app.command("fix")
def dead_letters_fix(
    dead_letter_id: str,
    text: Annotated[str | None, typer.Option(help="The corrected raw text")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--file", help="Read the corrected text from a file (- : stdin)")
    ] = None,
    edit: Annotated[bool, typer.Option("--edit", help="Edit the raw text in $EDITOR")] = False,
    replay: Annotated[bool, typer.Option("--replay", help="Replay it right after")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Replace an open dead letter's raw text with a corrected one."""
    if sum((text is not None, from_file is not None, edit)) != 1:
        raise typer.BadParameter("give exactly one of --text, --file or --edit")
    with _acting(database_url) as platform:
        if text is None and from_file is not None:
            text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text("utf-8")
        if edit:
            current = platform.usage.get_dead_letter(SYSTEM, dead_letter_id).raw_text
            text = click.edit(current)
            if text is None:
                out.print("unchanged")
                return
        assert text is not None
        platform.usage.fix_dead_letter(SYSTEM, dead_letter_id, text.rstrip("\n"))
        out.print(f"dead letter {dead_letter_id} fixed")
        if replay:
            _replay_one(platform, dead_letter_id)


def _replay_one(platform: Platform, dead_letter_id: str) -> None:
    outcome = _run(platform, lambda: platform.usage.replay(SYSTEM, dead_letter_id))
    letter = outcome.dead_letter
    if letter.status is DeadLetterStatus.REPLAYED:
        out.print(f"dead letter {letter.id} replayed: {_summary(outcome.result)}")
        return
    out.print(f"dead letter {letter.id} still open: {letter.reason}", markup=False)
    raise typer.Exit(code=EXIT_DEAD_LETTERS)


@dead_letter_app.command("replay")
def dead_letters_replay(
    dead_letter_id: Annotated[str | None, typer.Argument(help="One dead letter")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every open dead letter")] = False,
    fmt: Annotated[UsageFormat | None, typer.Option("--format", "-f", help="With --all")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Ingest a dead letter's (fixed) raw text again; with --all, every open one."""
    if (dead_letter_id is None) == (not replay_all):
        raise typer.BadParameter("give a dead letter id or --all")
    with _acting(database_url) as platform:
        if dead_letter_id is not None:
            _replay_one(platform, dead_letter_id)
            return
        usage: UsageIngestion = platform.usage
        outcomes = _run(
            platform, lambda: usage.replay_open(SYSTEM, DeadLetterQuery(format=fmt), limit=100_000)
        )
    total = IngestResult()
    still_open = 0
    for o in outcomes:
        total = total + o.result
        still_open += o.dead_letter.status is DeadLetterStatus.OPEN
    out.print(f"replayed {len(outcomes) - still_open} of {len(outcomes)}: {_summary(total)}")
    if still_open:
        out.print(f"[yellow]{still_open} still open[/yellow]")
        raise typer.Exit(code=EXIT_DEAD_LETTERS)


@dead_letter_app.command("discard")
def dead_letters_discard(
    dead_letter_id: str,
    reason: Annotated[str, typer.Option(help="Why it is given up on (audited)")],
    database_url: DatabaseUrl = None,
) -> None:
    """Give up on an open dead letter; it is kept, marked discarded, and never replayed."""
    with _acting(database_url) as platform:
        platform.usage.discard_dead_letter(SYSTEM, dead_letter_id, reason)
    out.print(f"dead letter {dead_letter_id} discarded")


# -- records --------------------------------------------------------------------------------------
@usage_app.command("prune")
def usage_prune(
    days: Annotated[
        int | None,
        typer.Option(help="Keep this many days (default: CALLWARDEN_USAGE_RETENTION_DAYS)", min=1),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete usage records older than the retention period (audited)."""
    with _acting(database_url) as platform:
        keep = days or platform.usage.retention_days
        if keep is None:
            out.print("no retention is set (CALLWARDEN_USAGE_RETENTION_DAYS or --days): kept")
            return
        deleted = platform.usage.prune(retention_days=keep)
    out.print(f"deleted {deleted} usage record(s) older than {keep} days")
