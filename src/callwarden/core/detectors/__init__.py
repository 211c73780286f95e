"""Streaming detectors over the usage stream: one interface, bounded state, rolling windows.

Feed each usage record to a :class:`DetectorSet` (or to one :class:`Detector`) and get
:class:`DetectorFinding` objects back. Everything here is pure: no I/O, no clock (time comes
from the records), so the same code runs in the embedded engine and in workers reading NATS.
docs/detectors.md describes every detector, its rule, its defaults and their sources.
"""

from callwarden.core.detectors.base import (
    Dedup,
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
)
from callwarden.core.detectors.baseline import BaselineDetector, BaselineParams
from callwarden.core.detectors.caller_rotation import (
    CallerRotationDetector,
    CallerRotationParams,
)
from callwarden.core.detectors.context import (
    DetectorContext,
    EventContext,
    TenantFacts,
    event_time,
)
from callwarden.core.detectors.detector_set import (
    DetectorConfig,
    DetectorPolicy,
    DetectorSet,
    default_detectors,
)
from callwarden.core.detectors.emergency import EmergencyAbuseDetector, EmergencyParams
from callwarden.core.detectors.fair_use import FairUseDetector, FairUseParams
from callwarden.core.detectors.irsf import IrsfDetector, IrsfParams
from callwarden.core.detectors.pumping import PumpingDetector, PumpingParams
from callwarden.core.detectors.robocall import RobocallDetector, RobocallParams
from callwarden.core.detectors.sequential import SequentialDialingDetector, SequentialParams
from callwarden.core.detectors.simbox import SimBoxDetector, SimBoxParams
from callwarden.core.detectors.wangiri import WangiriDetector, WangiriParams

__all__ = [
    "BaselineDetector",
    "BaselineParams",
    "CallerRotationDetector",
    "CallerRotationParams",
    "Dedup",
    "Detector",
    "DetectorConfig",
    "DetectorContext",
    "DetectorFinding",
    "DetectorPolicy",
    "DetectorSet",
    "EmergencyAbuseDetector",
    "EmergencyParams",
    "EventContext",
    "Evidence",
    "FairUseDetector",
    "FairUseParams",
    "IrsfDetector",
    "IrsfParams",
    "KeyKind",
    "PumpingDetector",
    "PumpingParams",
    "RobocallDetector",
    "RobocallParams",
    "SequentialDialingDetector",
    "SequentialParams",
    "Severity",
    "SimBoxDetector",
    "SimBoxParams",
    "SuggestedAction",
    "TenantFacts",
    "WangiriDetector",
    "WangiriParams",
    "default_detectors",
    "event_time",
]
