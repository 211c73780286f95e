"""Running the pure rules over an attempt: emergency first, then each rule under its policy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Finding
from callwarden.core.admission.policy import RuleMode
from callwarden.core.admission.rules import PIPELINE, Context
from callwarden.core.admission.snapshot import TenantSnapshot
from callwarden.core.numbering import Destination, NumberingPlan
from callwarden.core.prefixes import PrefixList

_SEPARATORS = str.maketrans("", "", " -.()")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pure rules concluded: emergency, a blocking finding, and what was observed."""

    emergency: bool
    destination: Destination
    blocking: Finding | None = None
    observed: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()


@lru_cache(maxsize=512)
def _country_code(region: str) -> str:
    return str(phonenumbers.country_code_for_region(region) or "")


NEVER_BLOCK: dict[str, frozenset[str]] = {
    "US": frozenset({"988"}),
    "DE": frozenset({"116117"}),
    "FR": frozenset({"115"}),
}
"""Lifeline numbers the numbering metadata does not mark as emergency but that are never
blocked either: the US 988 crisis line, Germany's 116 117 medical on-call service and France's
115 emergency social service (docs/admission.md cites the sources)."""

UNIVERSAL_EMERGENCY = frozenset({"112", "911"})
"""Emergency numbers in every country, whatever its own numbering plan says: mobile handsets
treat 112 and 911 as emergency calls on any network (3GPP TS 22.101, section 10.1.1), so
callers expect them to work from a hosted desk phone too, and a network receiving one routes
it to its own emergency service. A GB agent dialling 911 is never refused."""

OUTSIDE_LINE_PREFIXES = ("9", "0")
"""Digits a PBX user may dial to get an outside line before the emergency number (9-911): US
Kari's Law requires direct 911 dialling, and callwarden also never blocks the prefixed form."""


def is_emergency_call(numbering: NumberingPlan, raw: str, region: str) -> bool:
    """True for an emergency number dialled in `region`, also when a SIP server rewrote it to
    international form (`+44999`, `0044 999`) or a PBX user dialled an outside-line prefix first
    (`9911`), so neither can ever block one (CID-3)."""
    if numbering.classify(raw, region).is_emergency:
        return True
    compact = raw.strip().translate(_SEPARATORS)
    if len(compact) > 20:
        return False
    if compact in UNIVERSAL_EMERGENCY or compact in NEVER_BLOCK.get(region, ()):
        return True
    cc = _country_code(region)
    prefixes = [*OUTSIDE_LINE_PREFIXES]
    if cc:
        prefixes += ["+" + cc, "00" + cc]
    for prefix in prefixes:
        rest = compact[len(prefix) :]
        if (
            compact.startswith(prefix)
            and 2 <= len(rest) <= 6
            and (rest in UNIVERSAL_EMERGENCY or numbering.is_emergency(rest, region))
        ):
            return True
    return False


def is_emergency_anywhere(numbering: NumberingPlan, raw: str) -> bool:
    """True when `raw` is an emergency number in some region: used when the tenant is unknown,
    since an emergency call is admitted whatever is known of the caller."""
    return _emergency_anywhere(numbering, raw.strip()[:16])


@lru_cache(maxsize=4096)
def _emergency_anywhere(numbering: NumberingPlan, raw: str) -> bool:
    return any(numbering.is_emergency(raw, r) for r in numbering.emergency_regions)


def evaluate(
    attempt: CallAttempt,
    snapshot: TenantSnapshot,
    numbering: NumberingPlan,
    high_risk: PrefixList,
) -> Verdict:
    """Apply the pure rules in order. Emergency calls short-circuit to admit; a rule in observe
    mode records its finding and lets the call through; an allowlisted destination or user
    skips the rule; the first enforced finding is the refusal."""
    destination = numbering.classify(attempt.destination, snapshot.country)
    if is_emergency_call(numbering, attempt.destination, snapshot.country):
        return Verdict(emergency=True, destination=destination)
    ctx = Context(attempt, snapshot, destination, numbering, high_risk)
    observed: list[Finding] = []
    warnings: list[str] = []
    for rule_id, rule, directions in PIPELINE:
        if attempt.direction not in directions:
            continue
        policy = snapshot.policy(rule_id)
        if policy.mode is RuleMode.OFF:
            continue
        if policy.exempts(destination.e164, attempt.user_id):
            finding = rule(ctx)
            if finding is not None:
                warnings.append(f"{rule_id}: exempted by allowlist ({finding.reason})")
            continue
        finding = rule(ctx)
        if finding is None:
            continue
        if policy.mode is RuleMode.OBSERVE:
            observed.append(finding)
            continue
        return Verdict(False, destination, finding, tuple(observed), tuple(warnings))
    return Verdict(False, destination, None, tuple(observed), tuple(warnings))
