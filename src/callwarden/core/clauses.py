"""The clause catalogue: every policy clause callwarden enforces, by id.

Decisions, cases, suspensions and audit entries cite these ids so an operator can always answer
"which clause, and what evidence?". The ids and summaries are the project's own (see
docs/clauses.md); the policies they come from are named only by their abbreviations.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Enforcement(StrEnum):
    """How a clause is served: refused in real time, found in the usage stream, or a procedure."""

    BLOCK = "block"
    DETECT = "detect"
    WORKFLOW = "workflow"
    ATTEST = "attest"


@dataclass(frozen=True, slots=True)
class Clause:
    """One policy clause: its id, a one-line summary and how callwarden serves it."""

    id: str
    summary: str
    how: tuple[Enforcement, ...]


_B, _D, _W, _A = Enforcement.BLOCK, Enforcement.DETECT, Enforcement.WORKFLOW, Enforcement.ATTEST

CATALOGUE: dict[str, Clause] = {
    c.id: c
    for c in (
        Clause("ACC-1", "Only authorised users, within their role and the plan's channels", (_B,)),
        Clause("ACC-2", "Credentials are safeguarded; unauthorised access is reported", (_B, _D)),
        Clause("ACC-3", "Active users never exceed the seats bought on the order", (_B,)),
        Clause("ACC-4", "Seats over the limit are ordered, reduced or invoiced in time", (_W,)),
        Clause("ACC-5", "No sharing of one seat's credentials between people", (_D,)),
        Clause("ACC-6", "A seat moves to another person only to replace a leaver", (_W, _D)),
        Clause("LIM-1", "Month-to-date charges stay under the tenant's monthly limit", (_B,)),
        Clause("LIM-2", "Concurrent calls stay under the bought number of channels", (_B,)),
        Clause("LIM-3", "Service that would exceed the charge limit may be refused", (_B,)),
        Clause("LIM-4", "Unlimited plans are subject to fair use", (_D,)),
        Clause("LIM-5", "No flooding of the service with attempts", (_B,)),
        Clause("FRD-1", "The tenant is liable for calls to over-priced destinations", (_B,)),
        Clause("FRD-2", "Fraud is monitored and prevented", (_D,)),
        Clause("FRD-3", "Fraudulent use is stopped at once", (_W,)),
        Clause("FRD-4", "Anomalies in volumes, charges and tariffs are notified promptly", (_D,)),
        Clause("FRD-5", "No traffic pumping or access stimulation", (_D,)),
        Clause("FRD-6", "No SIM boxes or GSM gateways without written consent", (_D, _W)),
        Clause("DIA-1", "No abusive autodialing or predictive dialing", (_B, _D)),
        Clause("DIA-2", "No mass automated robocalls", (_D,)),
        Clause("DIA-3", "Telemarketing law: calling windows, do-not-call lists, consent", (_B,)),
        Clause("DIA-4", "No calls that annoy or harass the called party", (_B, _D)),
        Clause("DIA-5", "No bulk communication without consent; no number harvesting", (_B, _D)),
        Clause("DIA-6", "No trunking or forwarding a number to multi-call destinations", (_D,)),
        Clause("CID-1", "No false caller ID", (_B,)),
        Clause("CID-2", "No forged headers or misleading origin", (_B, _D)),
        Clause("CID-3", "Emergency calls always connect; no hoax emergency calls", (_D,)),
        Clause("CID-4", "No abusive content or malware", (_B, _W)),
        Clause("CID-5", "Recording and interception law is respected", (_B, _W)),
        Clause("GOV-1", "Usage is monitored and every change is audited", (_W,)),
        Clause("GOV-2", "Tenants, users and numbers can be suspended at once", (_W,)),
        Clause("GOV-3", "Users acknowledge the current policy version", (_W,)),
        Clause("GOV-4", "Security incidents are reported promptly", (_W,)),
        Clause("GOV-5", "Maintenance windows are announced", (_W,)),
        Clause("GOV-6", "Personal data is protected, retained and erased by rule", (_W,)),
        Clause("GOV-7", "The provider interprets the policy; overrides carry a reason", (_W,)),
        Clause("GOV-8", "Prohibited uses are attested at onboarding", (_A, _D)),
    )
}


def unknown_clause_ids(ids: tuple[str, ...] | list[str]) -> list[str]:
    """Return the ids in `ids` that are not in the catalogue, so callers can name them in errors."""
    return [i for i in ids if i not in CATALOGUE]
