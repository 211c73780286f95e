"""A call attempt as the SIP server presents it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Outbound calls leave the platform; inbound calls arrive at a tenant's number."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """One initial INVITE (or equivalent) that waits for an admission decision.

    `tenant_id` may be unknown to the SIP server; then `source_ip` identifies the tenant through
    its trunks. `caller` is the presented caller ID as sent (None or empty when withheld).
    `at` is the attempt's time in epoch seconds.
    """

    call_id: str
    destination: str
    direction: Direction
    at: float
    tenant_id: str | None = None
    user_id: str | None = None
    caller: str | None = None
    source_ip: str | None = None
