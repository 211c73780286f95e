"""Shared fixtures: a store on SQLite and on the real PostgreSQL server, and an API client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.world import World, build_world

from callwarden.platform import Platform
from callwarden.settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server, dropped afterwards."""
    name = f"callwarden_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'callwarden.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store only, for tests about the API rather than the database."""
    return f"sqlite:///{tmp_path / 'callwarden.db'}"


def _platform(url: str) -> Iterator[Platform]:
    platform = Platform.build(Settings(database_url=url, api_key_cache_ttl_s=0))
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def platform(database_url: str) -> Iterator[Platform]:
    """A migrated platform on each database."""
    yield from _platform(database_url)


@pytest.fixture
def api_platform(sqlite_url: str) -> Iterator[Platform]:
    """A migrated platform on SQLite, for API tests."""
    yield from _platform(sqlite_url)


@pytest.fixture
def world(api_platform: Platform) -> World:
    """Two seeded tenants behind an API client on SQLite."""
    return build_world(api_platform)
