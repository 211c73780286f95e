"""Surveillance configuration: detector policies per default, plan and tenant, and the
automatic-action policy (FRD-2, FRD-3).

Operators set them through the API; they are stored, audited in the same transaction with the
policy before and after (GOV-1), and put in force by surveillance without a restart: in this
process at once, through the listeners registered here, and in other processes when they next
re-read the configuration (every ``facts_ttl_s``, see :mod:`callwarden.services.surveillance`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from callwarden.core.admission.policy import RuleMode
from callwarden.core.audit import JSONValue
from callwarden.core.cases import ActionPolicy, action_policy_to_json
from callwarden.core.detectors.base import Detector
from callwarden.core.detectors.detector_set import DetectorConfig, DetectorPolicy
from callwarden.core.detectors.policy_json import (
    DetectorInfo,
    describe,
    params_from_json,
    policy_to_json,
)
from callwarden.core.errors import InvalidInput, NotFound
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.services.governance import GovernanceService, authorize
from callwarden.services.scopes import check_scope

__all__ = ["SCOPES", "SurveillanceConfigService", "audit_json"]

SCOPES: Final[tuple[str, ...]] = ("default", "plan", "tenant")
"""Where a detector policy is set: for everyone, for a plan's tenants, for one tenant."""
_USER_ID = re.compile(r"us_[0-9a-f]{16}")
_NUMBER = re.compile(r"\+?[0-9]{3,15}")
_PREFIX = re.compile(r"[0-9]{1,15}")
_MAX_ALLOWED = 1000


def audit_json(value: Any) -> JSONValue:
    """A JSON value the audit log can hash: floats become their shortest decimal text."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): audit_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [audit_json(v) for v in value]
    return str(value)


def _subject(scope: str, scope_id: str) -> tuple[str, str]:
    """The audit subject of a detector policy change: the plan or tenant, or the defaults."""
    return (scope, scope_id) if scope_id else ("surveillance", "defaults")


Listener = Callable[[], None]
"""Told after a change commits (surveillance re-reads its configuration)."""


class SurveillanceConfigService:
    """Reads and changes how the detectors run and which findings act."""

    def __init__(self, governance: GovernanceService, detectors: Sequence[Detector[Any]]) -> None:
        self.governance = governance
        self.infos: dict[str, DetectorInfo] = {i.id: i for i in describe(detectors)}
        self.listeners: list[Listener] = []

    # -- helpers -------------------------------------------------------------------------------
    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def info(self, detector: str) -> DetectorInfo:
        """A detector's id, clauses and parameter fields; InvalidInput naming ``detector``
        when there is no such detector."""
        found = self.infos.get(detector)
        if found is None:
            known = ", ".join(sorted(self.infos))
            raise InvalidInput(
                f"detector {detector!r} is not a detector; known: {known}", field="detector"
            )
        return found

    @staticmethod
    def authorize_change(by: Principal) -> None:
        """Raise ``Forbidden`` unless ``by`` may change the surveillance configuration
        (operators), so a caller without the right learns nothing from validation first."""
        authorize(by, Permission.PLANS_WRITE)

    @staticmethod
    def _read_permission(by: Principal, scope: str, scope_id: str) -> None:
        authorize(by, Permission.TENANTS_READ, scope_id if scope == "tenant" else None)

    # -- detectors -----------------------------------------------------------------------------
    def detectors(self) -> list[DetectorInfo]:
        """Every detector surveillance runs, with its clauses and parameter defaults."""
        return list(self.infos.values())

    def build_policy(
        self,
        detector: str,
        *,
        mode: str,
        params: Mapping[str, object] | None,
        allow_users: Sequence[str] = (),
        allow_numbers: Sequence[str] = (),
        allow_destinations: Sequence[str] = (),
    ) -> DetectorPolicy:
        """A checked policy for ``detector`` from the API's plain values.

        Raises ``InvalidInput`` naming the field: an unknown detector, parameter or mode, a
        parameter of the wrong type or out of range, a malformed allowlist entry.
        """
        info = self.info(detector)
        for name, values, pattern, what in (
            ("allow_users", allow_users, _USER_ID, "a user id"),
            ("allow_numbers", allow_numbers, _NUMBER, "a number (digits, E.164 with '+')"),
            ("allow_destinations", allow_destinations, _PREFIX, "a prefix of 1 to 15 digits"),
        ):
            if len(values) > _MAX_ALLOWED:
                raise InvalidInput(f"{name} holds more than {_MAX_ALLOWED} entries", field=name)
            for value in values:
                if not pattern.fullmatch(value):
                    raise InvalidInput(f"{name}: {value!r} is not {what}", field=name)
        try:
            rule_mode = RuleMode(mode)
        except ValueError:
            raise InvalidInput(
                f"mode {mode!r} is not enforce, observe or off", field="mode"
            ) from None
        return DetectorPolicy(
            mode=rule_mode,
            params=None if params is None else params_from_json(info, params),
            allow_users=frozenset(allow_users),
            allow_numbers=frozenset(allow_numbers),
            allow_destinations=tuple(allow_destinations),
        )

    def policies(self, by: Principal, scope: str, scope_id: str = "") -> dict[str, DetectorPolicy]:
        """The detector policies set at one scope (detectors not listed inherit)."""
        self._read_permission(by, scope, scope_id)
        with self.governance.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            return tx.get_detector_policies(scope, scope_id)

    def set_policy(
        self, by: Principal, scope: str, scope_id: str, detector: str, policy: DetectorPolicy
    ) -> DetectorPolicy:
        """Set how ``detector`` runs at a scope (operators; audited with before and after)."""
        self.authorize_change(by)
        info = self.info(detector)
        if policy.params is not None and not isinstance(policy.params, info.params_type):
            raise InvalidInput(
                f"parameters of {detector!r} must be {info.params_type.__name__}", field="params"
            )
        gov = self.governance
        with gov.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            before = tx.get_detector_policies(scope, scope_id).get(detector)
            tx.set_detector_policy(scope, scope_id, detector, policy, gov.clock())
            gov._audit(
                tx,
                by,
                "detector_policy.set",
                *_subject(scope, scope_id),
                scope_id if scope == "tenant" else None,
                clause_ids=(*info.clause_ids, "GOV-7"),
                details={
                    "detector": detector,
                    "before": audit_json(policy_to_json(before)) if before else None,
                    "after": audit_json(policy_to_json(policy)),
                },
            )
        self._changed()
        return policy

    def delete_policy(self, by: Principal, scope: str, scope_id: str, detector: str) -> None:
        """Drop the policy of ``detector`` at a scope: the next wider one applies (operators;
        audited with the policy dropped)."""
        authorize(by, Permission.PLANS_WRITE)
        info = self.info(detector)
        gov = self.governance
        with gov.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            before = tx.get_detector_policies(scope, scope_id).get(detector)
            if before is None or not tx.delete_detector_policy(scope, scope_id, detector):
                where = f"{scope} {scope_id}" if scope_id else "the defaults"
                raise NotFound(f"no policy for detector {detector} in {where}", field="detector")
            gov._audit(
                tx,
                by,
                "detector_policy.deleted",
                *_subject(scope, scope_id),
                scope_id if scope == "tenant" else None,
                clause_ids=(*info.clause_ids, "GOV-7"),
                details={"detector": detector, "before": audit_json(policy_to_json(before))},
            )
        self._changed()

    # -- the action policy ---------------------------------------------------------------------
    def action_policy(self, by: Principal) -> ActionPolicy:
        """The automatic-action policy in force (the built-in default until one is set)."""
        authorize(by, Permission.PLANS_WRITE)
        with self.governance.store.transaction() as tx:
            return tx.get_action_policy() or ActionPolicy()

    def set_action_policy(self, by: Principal, policy: ActionPolicy) -> ActionPolicy:
        """Replace the automatic-action policy (operators; audited with before and after)."""
        authorize(by, Permission.PLANS_WRITE)
        gov = self.governance
        with gov.store.transaction() as tx:
            before = tx.get_action_policy() or ActionPolicy()
            tx.set_action_policy(policy, gov.clock())
            gov._audit(
                tx,
                by,
                "action_policy.set",
                "action_policy",
                "default",
                None,
                clause_ids=("FRD-3", "GOV-7"),
                details={
                    "before": audit_json(action_policy_to_json(before)),
                    "after": audit_json(action_policy_to_json(policy)),
                },
            )
        self._changed()
        return policy

    def reset_action_policy(self, by: Principal) -> None:
        """Drop the stored action policy: the built-in default applies (operators; audited)."""
        authorize(by, Permission.PLANS_WRITE)
        gov = self.governance
        with gov.store.transaction() as tx:
            before = tx.get_action_policy()
            if before is None or not tx.delete_action_policy():
                raise NotFound("no action policy is set", field="action_policy")
            gov._audit(
                tx,
                by,
                "action_policy.deleted",
                "action_policy",
                "default",
                None,
                clause_ids=("FRD-3", "GOV-7"),
                details={"before": audit_json(action_policy_to_json(before))},
            )
        self._changed()

    # -- for surveillance ----------------------------------------------------------------------
    def load(self) -> tuple[DetectorConfig, ActionPolicy | None]:
        """Every stored detector policy of a known detector, and the stored action policy."""
        with self.governance.store.transaction() as tx:
            config = tx.detector_config()
            actions = tx.get_action_policy()
        known = self.infos

        def keep(policies: Mapping[str, DetectorPolicy]) -> dict[str, DetectorPolicy]:
            return {k: p for k, p in policies.items() if k in known}

        return (
            DetectorConfig(
                defaults=keep(config.defaults),
                plans={k: keep(v) for k, v in config.plans.items()},
                tenants={k: keep(v) for k, v in config.tenants.items()},
            ),
            actions,
        )
