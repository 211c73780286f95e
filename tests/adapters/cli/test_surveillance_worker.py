"""`callwarden surveillance run`: surveillance as a worker process reading NATS JetStream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from tests.services.test_surveillance import fraud, seeded
from typer.testing import CliRunner

from callwarden.adapters.cli.main import app
from callwarden.adapters.stream.nats import JetStreamStream
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.detectors.detector_set import DetectorPolicy
from callwarden.core.model import TenantStatus
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture
def scaled_out(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a deployment with its own NATS stream (deleted afterwards)."""
    tag = uuid.uuid4().hex[:12]
    env = {
        "CALLWARDEN_DATABASE_URL": f"sqlite:///{tmp_path / 'cw.db'}",
        "CALLWARDEN_NATS_URL": NATS_URL,
        "CALLWARDEN_NATS_STREAM": f"CWWORKER_{tag}",
        "CALLWARDEN_NATS_SUBJECT_PREFIX": f"cwworker{tag}.usage",
        "CALLWARDEN_LOG_LEVEL": "WARNING",
    }
    yield env
    platform = Platform.build(_settings(env))

    async def drop() -> None:
        stream = platform.stream
        assert isinstance(stream, JetStreamStream)
        await stream.delete()
        await platform.aclose()

    anyio.run(drop)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        database_url=env["CALLWARDEN_DATABASE_URL"],
        nats_url=env["CALLWARDEN_NATS_URL"],
        nats_stream=env["CALLWARDEN_NATS_STREAM"],
        nats_subject_prefix=env["CALLWARDEN_NATS_SUBJECT_PREFIX"],
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.nats
async def test_a_worker_process_reads_the_stream_and_suspends_the_tenant_it_finds_defrauded(
    scaled_out: dict[str, str],
) -> None:
    """Usage published by another process reaches the worker over NATS; under the stored
    policies (IRSF enforced, critical findings suspend the tenant) the worker suspends the
    tenant in the shared database, and it stops cleanly on SIGTERM."""
    platform = Platform.build(_settings(scaled_out))
    world = seeded(platform)
    config = platform.surveillance.config
    config.set_policy(SYSTEM, "default", "", "irsf", DetectorPolicy(mode=RuleMode.ENFORCE))
    config.set_action_policy(
        SYSTEM, ActionPolicy(by_severity={Severity.CRITICAL: SuggestedAction.SUSPEND_TENANT})
    )
    stored = await platform.usage.ingest_records(fraud(world, 5))
    assert stored.stored == 5

    worker = subprocess.Popen(
        [sys.executable, "-m", "callwarden.adapters.cli.main", "surveillance", "run"],
        env={**os.environ, **scaled_out},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            tenant = platform.governance.get_tenant(SYSTEM, world.tenants[0])
            if tenant.status is TenantStatus.SUSPENDED:
                break
            await anyio.sleep(0.2)
        assert tenant.status is TenantStatus.SUSPENDED, worker.stderr
        assert tenant.suspension is not None and "irsf" in tenant.suspension.reason
    finally:
        worker.send_signal(signal.SIGTERM)
        output, errors = worker.communicate(timeout=30)
        await platform.aclose()
    assert worker.returncode == 0, errors
    assert "surveillance worker reading" in output


def test_a_worker_without_a_shared_stream_is_refused_naming_the_setting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["surveillance", "run", "--database-url", f"sqlite:///{tmp_path / 'cw.db'}"],
        env={"CALLWARDEN_NATS_URL": ""},
    )
    assert result.exit_code == 2
    assert "nats_url" in result.output + (result.stderr or "")
