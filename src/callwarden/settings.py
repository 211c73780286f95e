"""One settings object for the whole process.

Values come, in order of precedence, from keyword arguments, `CALLWARDEN_*` environment
variables, and an optional TOML file named by `CALLWARDEN_CONFIG`. docs/configuration.md lists
every key with its default.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Every configurable value of callwarden."""

    model_config = SettingsConfigDict(env_prefix="CALLWARDEN_", extra="forbid")

    database_url: str = Field(
        "sqlite:///callwarden.db",
        description="SQLAlchemy URL of the store: sqlite:///PATH (default) or postgresql://...",
    )
    counters_url: str = Field(
        "memory://", description="Counters backend: memory:// (in-process) or redis://HOST:PORT/DB"
    )
    nats_url: str | None = Field(None, description="NATS server for the usage stream, if any")
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(8080, ge=1, le=65535, description="Port the HTTP API listens on")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    log_format: Literal["json", "text"] = Field("json", description="json (one object per line)")
    api_key_cache_ttl_s: float = Field(
        5.0, ge=0, description="Seconds a recognised API key is remembered in process"
    )
    lease_grace_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a concurrency lease outlives the call's maximum duration",
    )
    change_poll_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often an instance reads the change feed for other instances' changes",
    )
    max_page_size: int = Field(500, ge=1, description="Largest `limit` a list endpoint accepts")
    sip_host: str = Field("127.0.0.1", description="Address the SIP redirect interface listens on")
    sip_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="UDP and TCP port of the SIP redirect interface (unset: not started)",
    )
    evapi_host: str = Field(
        "127.0.0.1", description="Address the Kamailio evapi service listens on"
    )
    evapi_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port of the Kamailio evapi service (unset: not started)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CALLWARDEN_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
