"""What the shell commands share: the `--database-url` option, the platform a command acts
on, and how a refusal is reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from callwarden.core.errors import CallwardenError
from callwarden.platform import Platform
from callwarden.settings import Settings

__all__ = ["DatabaseUrl", "acting", "platform_for", "require_nats_url"]

err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides CALLWARDEN_DATABASE_URL", show_default=False),
]


def platform_for(database_url: str | None) -> Platform:
    """The platform built from the settings, with `database_url` overriding the configured
    database when given."""
    return Platform.build(Settings(database_url=database_url) if database_url else Settings())


def require_nats_url(settings: Settings, why: str, *, option: str | None = None) -> str:
    """The NATS URL of ``settings``; without one, say ``why`` the command needs it (and the
    command's ``option`` that gives it, if any) and exit 2."""
    if not settings.nats_url:
        other = f" or pass {option}" if option else ""
        err.print(
            f"[red]error (nats_url):[/red] {why}: set CALLWARDEN_NATS_URL{other}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(code=2)
    return settings.nats_url


def _refusal(exc: CallwardenError, *, show_clauses: bool = False) -> typer.Exit:
    """Print a refusal's reason (and the field it concerns) on standard error, with the
    clauses behind it when `show_clauses`; the exit, with code 2, for the caller to raise."""
    where = f" ({exc.field})" if exc.field else ""
    clauses = f" [{', '.join(exc.clause_ids)}]" if show_clauses and exc.clause_ids else ""
    err.print(f"[red]error{where}:[/red] {exc.message}{clauses}", markup=True, highlight=False)
    return typer.Exit(code=2)


@contextmanager
def acting(database_url: str | None, *, show_clauses: bool = False) -> Iterator[Platform]:
    """The platform for one command: a refusal prints its reason and exits 2; always closed."""
    platform = platform_for(database_url)
    try:
        yield platform
    except CallwardenError as exc:
        raise _refusal(exc, show_clauses=show_clauses) from exc
    finally:
        platform.close()
