"""Identifiers: a short type prefix an operator can read, and 64 random bits."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A new id such as `tn_3f9a1c2b7d4e5f60` (prefix names the entity type)."""
    return f"{prefix}_{secrets.token_hex(8)}"
