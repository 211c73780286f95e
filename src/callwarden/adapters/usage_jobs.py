"""The usage jobs a serving process runs: retention, the publish outbox, the watched folder."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread

from callwarden.adapters.watch import FolderWatcher
from callwarden.platform import Platform

__all__ = ["run_usage_jobs"]

log = logging.getLogger("callwarden.usage")

PUBLISH_PENDING_INTERVAL_S = 30.0
"""How often records an earlier publish did not deliver are sent to the stream again."""


async def _every(interval_s: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` every `interval_s` seconds; a failure is logged and the next run goes ahead."""
    while True:
        try:
            await job()
        except Exception:
            log.exception("usage job failed", extra={"job": name})
        await anyio.sleep(interval_s)


async def run_usage_jobs(platform: Platform) -> None:
    """Prune usage past its retention, publish what the outbox still holds, watch the folder.

    Runs until cancelled (the API's lifespan starts it).
    """
    settings, usage = platform.settings, platform.usage

    async def prune() -> None:
        deleted = await anyio.to_thread.run_sync(lambda: usage.prune())
        if deleted:
            log.info("usage pruned", extra={"deleted": deleted})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_every, settings.usage_prune_interval_s, prune, "prune")
        tasks.start_soon(
            _every, PUBLISH_PENDING_INTERVAL_S, usage.publish_pending, "publish_pending"
        )
        if settings.usage_watch_dir:
            watcher = FolderWatcher(
                usage,
                Path(settings.usage_watch_dir),
                default_format=settings.usage_watch_format,
                interval_s=settings.usage_watch_interval_s,
                settle_s=settings.usage_watch_settle_s,
                keep_bytes=settings.usage_max_body_bytes,
            )
            tasks.start_soon(watcher.run)
