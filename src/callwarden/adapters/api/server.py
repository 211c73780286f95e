"""Serving the API with uvicorn (uvloop and httptools when present)."""

from __future__ import annotations

import uvicorn

from callwarden.adapters.api.app import create_app
from callwarden.logs import configure_logging
from callwarden.platform import Platform
from callwarden.settings import Settings


def run(settings: Settings) -> None:
    """Build the platform and serve it until interrupted."""
    configure_logging(settings.log_level, settings.log_format)
    platform = Platform.build(settings)
    uvicorn.run(
        create_app(platform, owns_platform=True),
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        log_config=None,
        access_log=False,
    )
