"""Findings and decisions: what a rule found, and the answer the SIP server gets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's objection to an attempt, with the clauses and the SIP status it maps to."""

    rule: str
    clause_ids: tuple[str, ...]
    reason: str
    sip_status: int = 403
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a call attempt.

    `observed` lists what rules in observe mode would have refused; `warnings` says what the
    SIP server or operator should know (a degraded counter, an exemption used); `degraded` is
    true when a backing service was unreachable and a rule failed open or closed.
    """

    admit: bool
    sip_status: int
    reason: str
    clause_ids: tuple[str, ...]
    max_duration_s: int | None
    emergency: bool = False
    degraded: bool = False
    warnings: tuple[str, ...] = ()
    observed: tuple[Finding, ...] = ()
    refused_by: str | None = None
    retry_after_s: float | None = None


def admitted(
    max_duration_s: int | None,
    *,
    emergency: bool = False,
    degraded: bool = False,
    warnings: tuple[str, ...] = (),
    observed: tuple[Finding, ...] = (),
) -> Decision:
    """An admission: SIP 200-class (the server proceeds; a redirect server answers 302)."""
    reason = "emergency call: always admitted" if emergency else "admitted"
    clause_ids = ("CID-3",) if emergency else ()
    return Decision(
        admit=True,
        sip_status=200,
        reason=reason,
        clause_ids=clause_ids,
        max_duration_s=max_duration_s,
        emergency=emergency,
        degraded=degraded,
        warnings=warnings,
        observed=observed,
    )


def refused(
    finding: Finding,
    *,
    degraded: bool = False,
    warnings: tuple[str, ...] = (),
    observed: tuple[Finding, ...] = (),
) -> Decision:
    """A refusal carrying the blocking finding's status, reason and clauses."""
    return Decision(
        admit=False,
        sip_status=finding.sip_status,
        reason=finding.reason,
        clause_ids=finding.clause_ids,
        max_duration_s=None,
        degraded=degraded,
        warnings=warnings,
        observed=observed,
        refused_by=finding.rule,
        retry_after_s=finding.retry_after_s,
    )
