"""Alembic environment: runs migrations on the engine the caller bound to the configuration."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from callwarden.adapters.store.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("callwarden migrations run through callwarden.adapters.store.migrate()")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
