"""Reading the simulator's JSON files (labels and facts): required fields, checked, with the
field named in the refusal.

Pure core: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from callwarden.core.errors import InvalidInput

__all__ = ["text", "texts"]


def text(data: Mapping[str, object], field: str) -> str:
    """`field` of `data`, which must be a non-empty string."""
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    return value


def texts(data: Mapping[str, object], field: str) -> tuple[str, ...]:
    """`field` of `data`, a list of strings (none when absent)."""
    value = data.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of strings", field=field)
    return tuple(value)
