"""Serving the API with uvicorn (uvloop and httptools when present), and beside it the SIP
redirect interface and the Kamailio evapi service when their ports are configured."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import uvicorn

from callwarden.adapters.api.app import Background, create_app
from callwarden.adapters.evapi import run_evapi
from callwarden.adapters.heap import settle_heap
from callwarden.adapters.sip import run_sip
from callwarden.adapters.stream.nats import JetStreamStream, run_ingestion
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
