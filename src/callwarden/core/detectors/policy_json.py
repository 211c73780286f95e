"""Detector policies as JSON: what the API takes and the store keeps.

A detector's parameters are its frozen parameter dataclass; here they become a JSON object of
its fields and back, with every value checked against the field's type (taken from the field's
default: ``int``, ``float`` or ``bool``) and against :func:`check_params`, so an unknown field
or a bad value is refused with an ``InvalidInput`` naming ``params.<field>``.

Pure core: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.base import Detector, check_params
from callwarden.core.detectors.detector_set import DetectorPolicy
from callwarden.core.errors import InvalidInput
from callwarden.core.validation import check_choice, check_fields

__all__ = [
    "DetectorInfo",
    "ParamField",
    "describe",
    "params_from_json",
    "params_to_json",
    "policy_from_json",
    "policy_to_json",
]

ParamValue = int | float | bool


@dataclass(frozen=True, slots=True)
class ParamField:
    """One parameter of a detector: its name, its type (``int``, ``float``, ``bool``) and its
    default."""

    name: str
    type: str
    default: ParamValue


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """What an operator needs to configure a detector: id, clauses, the record kinds it reads
    and its parameter fields with their defaults."""

    id: str
    clause_ids: tuple[str, ...]
    kinds: tuple[str, ...]
    params: tuple[ParamField, ...]
    params_type: type


def _fields(params_type: type) -> tuple[ParamField, ...]:
    defaults = params_type()
    out = []
    for item in dataclasses.fields(defaults):
        value = getattr(defaults, item.name)
        out.append(ParamField(item.name, type(value).__name__, value))
    return tuple(out)


def describe(detectors: Sequence[Detector[Any]]) -> list[DetectorInfo]:
    """The configurable face of each detector, in the order given."""
    return [
        DetectorInfo(
            id=d.id,
            clause_ids=tuple(d.clause_ids),
            kinds=tuple(sorted(k.value for k in d.kinds)),
            params=_fields(d.params_type),
            params_type=d.params_type,
        )
        for d in detectors
    ]


def params_to_json(params: object) -> dict[str, ParamValue]:
    """Every field of a parameter dataclass, as a JSON object."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise InvalidInput("parameters must be a detector's parameter dataclass", field="params")
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def _value(detector_id: str, field: ParamField, value: object) -> ParamValue:
    where = f"params.{field.name}"
    if field.type == "bool":
        if isinstance(value, bool):
            return value
        raise InvalidInput(f"{detector_id}: {field.name} must be true or false", field=where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{detector_id}: {field.name} must be a number", field=where)
    if field.type == "int":
        if isinstance(value, float) and not value.is_integer():
            raise InvalidInput(
                f"{detector_id}: {field.name} must be a whole number, got {value!r}", field=where
            )
        return int(value)
    return float(value)


def params_from_json(info: DetectorInfo, data: Mapping[str, object]) -> object:
    """The detector's parameter dataclass from a JSON object; fields not given take their
    defaults.

    Raises ``InvalidInput`` naming ``params.<field>`` for an unknown field, a value of the
    wrong type, or a value no detector can run with (negative, not finite, a share above 1).
    """
    fields = {f.name: f for f in info.params}
    values: dict[str, ParamValue] = {}
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(fields))
            raise InvalidInput(
                f"{info.id}: {name!r} is not a parameter (known: {known})", field=f"params.{name}"
            )
        values[name] = _value(info.id, field, value)
    params = info.params_type(**values)
    try:
        check_params(info.id, params)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=f"params.{exc.field}") from None
    return params


def policy_to_json(policy: DetectorPolicy) -> dict[str, Any]:
    """A detector policy as a JSON object: mode, parameters (or null) and allowlists."""
    params = None if policy.params is None else params_to_json(policy.params)
    return {
        "mode": policy.mode.value,
        "params": params,
        "allow_users": sorted(policy.allow_users),
        "allow_numbers": sorted(policy.allow_numbers),
        "allow_destinations": list(policy.allow_destinations),
    }


def _strings(data: Mapping[str, object], name: str) -> list[str]:
    raw = data.get(name) or []
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    return [str(v) for v in raw]


def policy_from_json(info: DetectorInfo, data: Mapping[str, object]) -> DetectorPolicy:
    """The inverse of :func:`policy_to_json`; raises ``InvalidInput`` naming the field."""
    check_fields(
        data,
        ("mode", "params", "allow_users", "allow_numbers", "allow_destinations"),
        "a detector policy",
    )
    mode = check_choice(data.get("mode", RuleMode.OBSERVE.value), RuleMode, "mode")
    raw = data.get("params")
    if raw is not None and not isinstance(raw, Mapping):
        raise InvalidInput("params must be an object", field="params")
    return DetectorPolicy(
        mode=mode,
        params=params_from_json(info, raw) if raw is not None else None,
        allow_users=frozenset(_strings(data, "allow_users")),
        allow_numbers=frozenset(_strings(data, "allow_numbers")),
        allow_destinations=tuple(_strings(data, "allow_destinations")),
    )
