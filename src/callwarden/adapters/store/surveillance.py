"""Surveillance configuration and throttles in SQL (migration 0008).

Detector policies (per default, plan and tenant), the automatic-action policy and throttles
live on the main store's session: governance and the surveillance configuration service change
them and write the audit entry in the same transaction. :class:`SurveillanceQueries` is mixed
into :class:`~callwarden.adapters.store.sql.SqlTransaction`.

Detector parameters are kept as a JSON object of every field; reading them back takes the
fields the detector still has, so a row written before a detector lost a parameter stays
readable.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callwarden.adapters.store.tables import ActionPolicyRow, DetectorPolicyRow, ThrottleRow
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy, action_policy_from_json, action_policy_to_json
from callwarden.core.detectors.detector_set import (
    DetectorConfig,
    DetectorPolicy,
    default_detectors,
)
from callwarden.core.detectors.policy_json import DetectorInfo, describe, params_from_json
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Throttle, ThrottleRates
from callwarden.services.ids import new_id

__all__ = ["SurveillanceQueries"]

log = logging.getLogger("callwarden.store")

_ACTION_POLICY_ID = "default"


@cache
def _known() -> dict[str, DetectorInfo]:
    return {info.id: info for info in describe(default_detectors())}


def _params(detector: str, data: dict[str, Any] | None) -> object | None:
    if data is None:
        return None
    info = _known().get(detector)
    if info is None:
        return None
    names = {f.name for f in info.params}
    try:
        return params_from_json(info, {k: v for k, v in data.items() if k in names})
    except InvalidInput:
        log.warning("stored parameters of %s are no longer valid; defaults apply", detector)
        return None


def _policy(row: DetectorPolicyRow) -> DetectorPolicy:
    return DetectorPolicy(
        mode=RuleMode(row.mode),
        params=_params(row.detector, row.params),
        allow_users=frozenset(str(u) for u in row.allow_users),
        allow_numbers=frozenset(str(n) for n in row.allow_numbers),
        allow_destinations=tuple(str(p) for p in row.allow_destinations),
    )


def _params_json(policy: DetectorPolicy) -> dict[str, Any] | None:
    params = policy.params
    if params is None:
        return None
    return {name: getattr(params, name) for name in params.__dataclass_fields__}  # type: ignore[attr-defined]


def _rates_json(rates: ThrottleRates) -> dict[str, Any]:
    return {
        "fraction": rates.fraction,
        "attempts_per_second": rates.attempts_per_second,
        "attempts_per_minute": rates.attempts_per_minute,
    }


def _throttle(row: ThrottleRow) -> Throttle:
    rates = row.rates
    return Throttle(
        id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        rates=ThrottleRates(
            fraction=rates.get("fraction"),
            attempts_per_second=rates.get("attempts_per_second"),
            attempts_per_minute=rates.get("attempts_per_minute"),
        ),
        reason=row.reason,
        clause_ids=tuple(str(c) for c in row.clause_ids),
        at=row.at,
        by=row.by,
        expires_at=row.expires_at,
    )


class SurveillanceQueries:
    """Detector policies, the action policy and throttles, on the transaction's session."""

    session: Session

    # -- detector policies ---------------------------------------------------------------------
    def get_detector_policies(self, scope: str, scope_id: str) -> dict[str, DetectorPolicy]:
        """The detector policies set at one scope (``default`` with an empty id, ``plan``,
        ``tenant``), by detector id."""
        rows = self.session.scalars(
            select(DetectorPolicyRow)
            .where(DetectorPolicyRow.scope == scope, DetectorPolicyRow.scope_id == scope_id)
            .order_by(DetectorPolicyRow.detector)
        )
        return {row.detector: _policy(row) for row in rows}

    def detector_config(self) -> DetectorConfig:
        """Every stored detector policy, as the configuration surveillance runs under."""
        defaults: dict[str, DetectorPolicy] = {}
        plans: dict[str, dict[str, DetectorPolicy]] = {}
        tenants: dict[str, dict[str, DetectorPolicy]] = {}
        for row in self.session.scalars(select(DetectorPolicyRow)):
            if row.scope == "default":
                defaults[row.detector] = _policy(row)
            elif row.scope == "plan":
                plans.setdefault(row.scope_id, {})[row.detector] = _policy(row)
            elif row.scope == "tenant":
                tenants.setdefault(row.scope_id, {})[row.detector] = _policy(row)
        return DetectorConfig(defaults=defaults, plans=plans, tenants=tenants)

    def _detector_row(self, scope: str, scope_id: str, detector: str) -> DetectorPolicyRow | None:
        return self.session.scalar(
            select(DetectorPolicyRow).where(
                DetectorPolicyRow.scope == scope,
                DetectorPolicyRow.scope_id == scope_id,
                DetectorPolicyRow.detector == detector,
            )
        )

    def set_detector_policy(
        self, scope: str, scope_id: str, detector: str, policy: DetectorPolicy, at: datetime
    ) -> None:
        """Store (insert or replace) how ``detector`` runs at this scope."""
        row = self._detector_row(scope, scope_id, detector)
        if row is None:
            row = DetectorPolicyRow(
                id=new_id("dp"), scope=scope, scope_id=scope_id, detector=detector
            )
            self.session.add(row)
        row.mode = policy.mode.value
        row.params = _params_json(policy)
        row.allow_users = sorted(policy.allow_users)
        row.allow_numbers = sorted(policy.allow_numbers)
        row.allow_destinations = list(policy.allow_destinations)
        row.updated_at = at
        self.session.flush()

    def delete_detector_policy(self, scope: str, scope_id: str, detector: str) -> bool:
        """Drop the policy of ``detector`` at this scope; False when there was none."""
        result = self.session.execute(
            delete(DetectorPolicyRow).where(
                DetectorPolicyRow.scope == scope,
                DetectorPolicyRow.scope_id == scope_id,
                DetectorPolicyRow.detector == detector,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # -- the action policy ---------------------------------------------------------------------
    def get_action_policy(self) -> ActionPolicy | None:
        """The stored automatic-action policy, or None when none was set."""
        row = self.session.get(ActionPolicyRow, _ACTION_POLICY_ID)
        return action_policy_from_json(row.policy) if row is not None else None

    def set_action_policy(self, policy: ActionPolicy, at: datetime) -> None:
        """Store the automatic-action policy (replacing the one before)."""
        row = self.session.get(ActionPolicyRow, _ACTION_POLICY_ID)
        if row is None:
            row = ActionPolicyRow(id=_ACTION_POLICY_ID)
            self.session.add(row)
        row.policy = dict(action_policy_to_json(policy))
        row.updated_at = at
        self.session.flush()

    def delete_action_policy(self) -> bool:
        """Drop the stored action policy (the built-in default applies); False if none."""
        result = self.session.execute(
            delete(ActionPolicyRow).where(ActionPolicyRow.id == _ACTION_POLICY_ID)
        )
        return bool(getattr(result, "rowcount", 0))

    # -- throttles -----------------------------------------------------------------------------
    def add_throttle(self, throttle: Throttle) -> None:
        """Store a new throttle."""
        self.session.add(
            ThrottleRow(
                id=throttle.id,
                tenant_id=throttle.tenant_id,
                user_id=throttle.user_id,
                rates=_rates_json(throttle.rates),
                reason=throttle.reason,
                clause_ids=list(throttle.clause_ids),
                at=throttle.at,
                by=throttle.by,
                expires_at=throttle.expires_at,
            )
        )
        self.session.flush()

    def get_throttle(self, throttle_id: str) -> Throttle | None:
        """One throttle, or None."""
        row = self.session.get(ThrottleRow, throttle_id)
        return _throttle(row) if row is not None else None

    def delete_throttle(self, throttle_id: str) -> bool:
        """Drop a throttle (it is lifted); False when there was none."""
        result = self.session.execute(delete(ThrottleRow).where(ThrottleRow.id == throttle_id))
        return bool(getattr(result, "rowcount", 0))

    def list_throttles(self, tenant_id: str) -> list[Throttle]:
        """A tenant's throttles (its own and its users'), oldest first."""
        rows = self.session.scalars(
            select(ThrottleRow)
            .where(ThrottleRow.tenant_id == tenant_id)
            .order_by(ThrottleRow.at, ThrottleRow.id)
        )
        return [_throttle(r) for r in rows]
