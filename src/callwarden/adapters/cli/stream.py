"""`callwarden stream`: the usage stream's consumers on NATS JetStream, run from the shell."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import nats.errors
import typer
from rich.console import Console
from rich.table import Table

from callwarden.adapters.cli.common import DatabaseUrl, require_nats_url
from callwarden.adapters.stream.nats import INGEST_CONSUMER, JetStreamStream, run_ingestion
from callwarden.adapters.usage_jobs import PUBLISH_PENDING_INTERVAL_S
from callwarden.logs import configure_logging
from callwarden.platform import Platform
from callwarden.settings import Settings

stream_app = typer.Typer(help="The usage stream on NATS JetStream: ingestion and dead letters.")

log = logging.getLogger("callwarden.stream")
out = Console(soft_wrap=True)
err = Console(stderr=True)

NatsUrl = Annotated[
    str | None,
    typer.Option("--nats-url", help="Overrides CALLWARDEN_NATS_URL", show_default=False),
]


def _settings(nats_url: str | None, database_url: str | None) -> Settings:
    overrides = {
        k: v for k, v in (("nats_url", nats_url), ("database_url", database_url)) if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    require_nats_url(settings, "the usage stream is on NATS", option="--nats-url")
    return settings


def _jetstream(platform: Platform) -> JetStreamStream:
    stream = platform.stream
    assert isinstance(stream, JetStreamStream), "nats_url is set, so the stream is JetStream"
    return stream


@stream_app.command("ingest")
def ingest(
    nats_url: NatsUrl = None,
    database_url: DatabaseUrl = None,
    consumer: Annotated[
        str, typer.Option(help="Durable consumer name; processes sharing it share the work")
    ] = INGEST_CONSUMER,
) -> None:
    """Store raw usage sent to the NATS input subjects (<prefix>.in.<format>), one unit or a
    batch of units per message, until interrupted. Messages are acknowledged only once
    stored; stored records an interrupted run did not publish yet are published from the
    outbox."""
    settings = _settings(nats_url, database_url)
    configure_logging(settings.log_level, settings.log_format)
    platform = Platform.build(settings)

    async def main() -> None:
        stream = _jetstream(platform)

        def ready() -> None:
            err.print(f"ingesting usage from {stream.subject_prefix}.in.> as {consumer}")

        async def publish_pending() -> None:  # what a crash left between storing and publishing
            while True:
                try:
                    await platform.usage.publish_pending()
                except Exception:  # a database hiccup must not stop ingestion; next round
                    log.exception("publishing the usage outbox failed")
                await asyncio.sleep(PUBLISH_PENDING_INTERVAL_S)

        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(publish_pending())
                tasks.create_task(
                    run_ingestion(stream, platform.usage.ingest, consumer=consumer, ready=ready)
                )
        finally:
            await platform.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        err.print("stopped")


@stream_app.command("dead-letters")
def dead_letters(
    consumer: Annotated[str, typer.Argument(help="Consumer name, e.g. ingest")],
    limit: Annotated[int, typer.Option(min=1, help="How many, oldest first")] = 50,
    nats_url: NatsUrl = None,
) -> None:
    """List what a consumer gave up on, from its dead-letter subject."""
    settings = _settings(nats_url, None)
    platform = Platform.build(settings, migrate_schema=False)

    async def main() -> None:
        try:
            letters = await _jetstream(platform).dead_letters(consumer, limit=limit)
        finally:
            await platform.aclose()
        table = Table("failed at", "deliveries", "error", "record or raw input")
        for letter in letters:
            what = " ".join(letter.record.key) if letter.record is not None else letter.raw
            table.add_row(
                letter.failed_at.isoformat(), str(letter.deliveries), letter.error, what or ""
            )
        out.print(table)
        out.print(f"{len(letters)} dead letter(s) for {consumer}")

    try:
        asyncio.run(main())
    except ValueError as exc:
        err.print(f"[red]error (consumer):[/red] {exc}")
        raise typer.Exit(code=2) from exc
    except (nats.errors.Error, OSError) as exc:
        err.print(f"[red]error (nats_url):[/red] NATS at {settings.nats_url} did not answer: {exc}")
        raise typer.Exit(code=1) from exc
