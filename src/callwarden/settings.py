"""One settings object for the whole process.

Values come, in order of precedence, from keyword arguments, `CALLWARDEN_*` environment
variables, and an optional TOML file named by `CALLWARDEN_CONFIG`. docs/configuration.md lists
every key with its default.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import Field, IPvAnyNetwork
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callwarden.core.usage.record import UsageFormat


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
    nats_stream: str = Field(
        "CALLWARDEN_USAGE", description="Name of the JetStream stream holding the usage stream"
    )
    nats_subject_prefix: str = Field(
        "callwarden.usage",
        description="Subject prefix of the usage stream (records, raw input, dead letters)",
    )
    nats_max_deliver: int = Field(
        5, ge=1, description="Deliveries of a record to a failing consumer before it is dead"
    )
    nats_ack_wait_s: float = Field(
        30.0, gt=0, description="Seconds JetStream waits for an acknowledgement before redelivery"
    )
    nats_max_age_s: float = Field(
        604800.0, ge=0, description="Seconds JetStream keeps usage stream messages (0: no limit)"
    )
    nats_batch_size: int = Field(
        500,
        ge=1,
        le=10000,
        description="Messages a usage stream consumer fetches and handles at once",
    )
    usage_default_tz: str = Field(
        "UTC", description="IANA zone of usage times written without an offset (e.g. Master.csv)"
    )
    usage_batch_size: int = Field(
        10_000, ge=1, le=100_000, description="Usage units stored per transaction when ingesting"
    )
    usage_retention_days: int | None = Field(
        None, ge=1, description="Days usage records are kept (unset: kept until deleted)"
    )
    usage_prune_interval_s: float = Field(
        3600.0, gt=0, description="How often the server deletes usage past its retention"
    )
    usage_max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest usage request body the API accepts"
    )
    usage_watch_dir: str | None = Field(
        None, description="Folder the server watches for usage files (unset: not watched)"
    )
    usage_watch_format: UsageFormat = Field(
        UsageFormat.CALLWARDEN_CSV,
        description="Format of files in the watched folder unless a subfolder names another",
    )
    usage_watch_interval_s: float = Field(
        2.0, gt=0, description="How often the watched folder is scanned for new files"
    )
    usage_watch_settle_s: float = Field(
        2.0, ge=0, description="Seconds a file must stay unchanged before it counts as complete"
    )
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
    surveillance_enabled: bool = Field(
        True,
        description="Whether this instance runs the detectors over the usage stream (one should)",
    )
    surveillance_expiry_interval_s: float = Field(
        5.0, gt=0, description="How often expired automatic actions of cases are undone"
    )
    max_page_size: int = Field(500, ge=1, description="Largest `limit` a list endpoint accepts")
    sip_host: str = Field("127.0.0.1", description="Address the SIP redirect interface listens on")
    sip_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="UDP and TCP port of the SIP redirect interface (unset: not started)",
    )
    sip_trusted_proxies: tuple[IPvAnyNetwork, ...] = Field(
        (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        description="Addresses whose X-Callwarden-* headers the SIP redirect interface believes",
    )
    sip_refusal_status: Literal["decision", "603"] = Field(
        "decision",
        description="SIP refusals: the decision's status (403, 486, 503...) or 603 for every 4xx",
    )
    evapi_host: str = Field(
        "127.0.0.1", description="Address of Kamailio's evapi socket that callwarden connects to"
    )
    evapi_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of Kamailio's evapi socket (unset: callwarden does not connect)",
    )
    kamailio_jsonrpc_url: str | None = Field(
        None,
        description="Kamailio JSON-RPC over HTTP, for its backstop tables (unset: not kept)",
    )
    kamailio_sync_interval_s: float = Field(
        60.0, gt=0, description="Seconds between full reconciliations of Kamailio's backstops"
    )
    smtp_url: str | None = Field(
        None,
        pattern=r"^smtps?://",
        description="SMTP server for e-mail notifications: smtp://HOST:PORT (unset: e-mail off)",
    )
    smtp_from: str = Field(
        "callwarden@localhost", min_length=3, description="From address of e-mail notifications"
    )
    smtp_starttls: bool = Field(False, description="Upgrade smtp:// connections with STARTTLS")
    smtp_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for the SMTP server")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Seconds one webhook attempt may take")
    webhook_max_attempts: int = Field(
        5, ge=1, le=20, description="Webhook attempts before a delivery is logged as failed"
    )
    notify_poll_interval_s: float = Field(
        1.0, gt=0, description="How often the notification follower looks for new audit entries"
    )
    notify_deliver: bool = Field(
        True, description="Whether this instance delivers notifications (one instance should)"
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
