"""Serving the API with uvicorn (uvloop and httptools when present), and beside it the SIP
redirect interface and the Kamailio evapi service when their ports are configured."""

from __future__ import annotations

import functools
import gc
from collections.abc import Sequence

import uvicorn

from callwarden.adapters.api.app import Background, create_app
from callwarden.adapters.evapi import run_evapi
from callwarden.adapters.sip import run_sip
from callwarden.adapters.stream.nats import JetStreamStream, run_ingestion
from callwarden.core.numbering import default_numbering_plan
from callwarden.logs import configure_logging
from callwarden.platform import Platform
from callwarden.settings import Settings


def listeners(platform: Platform) -> list[Background]:
    """The non-HTTP interfaces the settings ask for, each run for as long as the API serves."""
    found: list[Background] = []
    if isinstance(platform.stream, JetStreamStream):  # nats_url is set: ingest its input subjects
        found.append(functools.partial(run_ingestion, platform.stream, platform.usage.ingest))
    if platform.settings.sip_port is not None:
        found.append(functools.partial(run_sip, platform))
    if platform.settings.evapi_port is not None:  # connect to Kamailio's evapi socket
        found.append(functools.partial(run_evapi, platform))
    return found


SERVING_GC_THRESHOLDS = (20_000, 20, 20)
"""The collector's thresholds while serving. Python's default starts a young collection every 700
net allocations, several times per call attempt; at 20,000 the objects of the requests in flight
have died before it looks, and older generations are walked far less often (bench.admission's
service figures with and without, docs/performance.md)."""


def settle_heap() -> None:
    """Move everything built at start (numbering metadata, modules, the platform) out of the
    garbage collector's reach: full collections then walk only what serving creates, instead of
    pausing the event loop for tens of milliseconds over objects that live as long as the
    process (docs/performance.md shows the p99 this buys)."""
    default_numbering_plan()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def run(settings: Settings, *, background: Sequence[Background] = ()) -> None:
    """Build the platform and serve it until interrupted; `background` tasks run alongside."""
    configure_logging(settings.log_level, settings.log_format)
    platform = Platform.build(settings)
    settle_heap()
    uvicorn.run(
        create_app(platform, owns_platform=True, background=[*listeners(platform), *background]),
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_config=None,
        access_log=False,
    )
