"""Stopping the stream's background tasks reliably."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any], *, retry_s: float = 0.1) -> None:
    """Cancel `task` and wait until it has ended, cancelling again while it runs on.

    On Python 3.11 `asyncio.wait_for` (used inside nats-py) can swallow a cancellation that
    arrives as its inner await completes; one `cancel()` then leaves the task running and a
    plain `await task` waits for ever. Whatever the task ended with is dropped: it was stopped.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as never retrieved
