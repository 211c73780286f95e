"""Usage records (calls, messages, logins) and the normalisers that read them from switches.

`record` holds the types; `normalise.split` and `normalise.normalise` turn raw input into
records; `schema.to_json` / `schema.from_json` are callwarden's own JSON form (also the stream
payload).
"""

from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    RawItem,
    UsageError,
    UsageFormat,
    UsageKind,
    UsageRecord,
)
from callwarden.core.usage.schema import from_json, to_json

__all__ = [
    "CallRecord",
    "Disposition",
    "LoginRecord",
    "MessageRecord",
    "RawItem",
    "UsageError",
    "UsageFormat",
    "UsageKind",
    "UsageRecord",
    "from_json",
    "normalise",
    "split",
    "to_json",
]
