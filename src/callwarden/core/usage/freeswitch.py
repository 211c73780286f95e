"""FreeSWITCH JSON CDRs, as mod_json_cdr posts or writes them, into call records.

One document describes one channel (leg). The a-leg is the channel that entered FreeSWITCH;
b-legs are channels FreeSWITCH originated (they carry an `originator` caller profile). All legs
of one call share the call id (the a-leg's uuid) and each leg has its own `leg`: "a" for the
a-leg and "b:<uuid>" for each b-leg, so forks and transfer targets are stored once each.

With `encode-values` on (the module's default) every channel variable is URL-encoded; values
are decoded here (a literal "+" stays "+", since FreeSWITCH encodes it as %2B). Caller profiles
are never encoded. Times come from the `*_uepoch` variables (microseconds since the epoch, UTC),
then `*_epoch`, then the callflow `times`. Custom channel variables carry callwarden's own facts:
callwarden_tenant, callwarden_user, callwarden_trunk, callwarden_campaign, callwarden_direction,
callwarden_attestation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import unquote

import orjson

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import fields
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    RawItem,
    UsageError,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.times import from_epoch

__all__ = ["normalise_freeswitch"]

_FORMAT = UsageFormat.FREESWITCH_JSON.value

_CAUSES: dict[str, Disposition] = {
    "NO_ANSWER": Disposition.NO_ANSWER,
    "NO_USER_RESPONSE": Disposition.NO_ANSWER,
    "RECOVERY_ON_TIMER_EXPIRE": Disposition.NO_ANSWER,
    "ALLOTTED_TIMEOUT": Disposition.NO_ANSWER,
    "NORMAL_CLEARING": Disposition.NO_ANSWER,
    "USER_BUSY": Disposition.BUSY,
    "ORIGINATOR_CANCEL": Disposition.CANCELLED,
    "LOSE_RACE": Disposition.CANCELLED,
    "PICKED_OFF": Disposition.CANCELLED,
    "CALL_AWARDED_DELIVERED": Disposition.CANCELLED,
}


_TIME_VARIABLES = {
    "start": ("start_uepoch", "start_epoch"),
    "answer": ("answer_uepoch", "answer_epoch"),
    "end": ("end_uepoch", "end_epoch"),
}


class _Variables:
    """Decoded access to a CDR's `variables` object."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, object]) -> None:
        self.raw = raw

    def get(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if type(value) is not str:
            value = str(value)
        if "%" in value:
            value = unquote(value)
        return value or None


def _object(value: object, field: str) -> Mapping[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UsageError(f"{field} must be a JSON object", field=field)
    return value


def _profiles(document: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The callflow entries, newest first (an array, or a single object in older versions)."""
    callflow = document.get("callflow")
    if callflow is None:
        return []
    entries = callflow if isinstance(callflow, list) else [callflow]
    return [entry for entry in entries if isinstance(entry, dict)]


def _profile_text(profile: Mapping[str, object] | None, name: str) -> str | None:
    if profile is None:
        return None
    value = profile.get(name)
    return value if isinstance(value, str) and value else None


def _time(
    variables: _Variables,
    name: str,
    times: Mapping[str, object] | None,
    times_name: str,
) -> datetime | None:
    """A leg's time from `<name>_uepoch`, `<name>_epoch` or the callflow times; None when 0."""
    micro_name, seconds_name = _TIME_VARIABLES[name]
    micro = variables.get(micro_name)
    if micro is not None:
        return _from_micro(micro, micro_name, "variables.")
    seconds = variables.get(seconds_name)
    if seconds is not None:
        try:
            value = int(seconds)
        except ValueError:
            field = f"variables.{seconds_name}"
            raise UsageError(f"{field} {seconds!r} is not an epoch time", field=field) from None
        return None if value == 0 else from_epoch(float(value), f"variables.{seconds_name}")
    if times is not None:
        value_text = times.get(times_name)
        if isinstance(value_text, str | int):
            return _from_micro(str(value_text), times_name, "callflow.times.")
    return None


def _from_micro(text: str, name: str, where: str) -> datetime | None:
    try:
        micros = int(text)
    except ValueError:
        field = f"{where}{name}"
        raise UsageError(
            f"{field} {text!r} is not an epoch time in microseconds", field=field
        ) from None
    if micros == 0:
        return None
    return from_epoch(micros / 1_000_000, f"{where}{name}")


def _direction(variables: _Variables, is_b_leg: bool) -> Direction:
    """callwarden_direction, then call_direction, then what the leg itself shows.

    An a-leg from an authenticated user (sip_authorized or user_name) is an outbound call; an
    unauthenticated a-leg arrived from outside (inbound). A b-leg sent to a gateway leaves the
    platform (outbound); a b-leg to a user delivers an inbound call.
    """
    explicit = fields.direction(variables.get("callwarden_direction"), "callwarden_direction")
    if explicit is not None:
        return explicit
    declared = (variables.get("call_direction") or "").lower()
    if declared in ("inbound", "outbound"):
        return Direction(declared)
    if is_b_leg:
        return Direction.OUTBOUND if variables.get("sip_gateway_name") else Direction.INBOUND
    authorized = (variables.get("sip_authorized") or "").lower() == "true"
    return Direction.OUTBOUND if authorized or variables.get("user_name") else Direction.INBOUND


def _disposition(answered: bool, cause: str | None) -> Disposition:
    if answered:
        return Disposition.ANSWERED
    if cause is None:
        raise UsageError(
            "variables.hangup_cause is missing for an unanswered leg",
            field="variables.hangup_cause",
        )
    return _CAUSES.get(cause.upper(), Disposition.FAILED)


def normalise_freeswitch(item: RawItem) -> list[UsageRecord]:
    """One call record (one leg) from one mod_json_cdr document."""
    try:
        document = orjson.loads(item.text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"not a JSON document: {exc}", field="record") from None
    if not isinstance(document, dict):
        raise UsageError("a FreeSWITCH CDR must be a JSON object", field="record")
    raw_variables = _object(document.get("variables"), "variables")
    if raw_variables is None:
        raise UsageError("variables is missing (not a mod_json_cdr document)", field="variables")
    variables = _Variables(raw_variables)
    profiles = _profiles(document)
    newest = (
        _object(profiles[0].get("caller_profile"), "callflow.caller_profile") if profiles else None
    )
    oldest_entry = profiles[-1] if profiles else None
    oldest = (
        _object(oldest_entry.get("caller_profile"), "callflow.caller_profile")
        if oldest_entry is not None
        else None
    )
    times = _object(oldest_entry.get("times"), "callflow.times") if oldest_entry else None
    newest_times = _object(profiles[0].get("times"), "callflow.times") if profiles else None

    originator = newest.get("originator") if newest is not None else None
    originator_uuid: str | None = None
    if isinstance(originator, dict):
        origins = originator.get("originator_caller_profiles")
        if isinstance(origins, list) and origins and isinstance(origins[0], dict):
            originator_uuid = _profile_text(origins[0], "uuid")
    is_b_leg = (
        originator is not None
        or variables.get("originating_leg_uuid") is not None
        or variables.get("originator") is not None
    )
    uuid = fields.optional_text(
        variables.get("uuid") or _profile_text(newest, "uuid"), "variables.uuid"
    )
    if uuid is None:
        raise UsageError("variables.uuid is missing", field="variables.uuid")
    if is_b_leg:
        call_id = (
            variables.get("originating_leg_uuid")
            or originator_uuid
            or variables.get("originator")
            or variables.get("call_uuid")
            or uuid
        )
        leg = f"b:{uuid}"
    else:
        call_id = variables.get("call_uuid") or uuid
        leg = "a"

    started_at = _time(variables, "start", times, "created_time")
    if started_at is None:
        raise UsageError("variables.start_epoch is missing", field="variables.start_epoch")
    answered_at = _time(variables, "answer", times, "answered_time")
    ended_at = _time(variables, "end", newest_times, "hangup_time")
    billsec = fields.whole_seconds(variables.get("billsec"), "variables.billsec")
    if answered_at is None:
        duration = 0
    elif billsec is not None:
        duration = billsec
    elif ended_at is not None:
        duration = max(0, int((ended_at - answered_at).total_seconds()))
    else:
        duration = 0
    callee = (
        variables.get("callwarden_callee")
        or _profile_text(oldest, "destination_number")
        or variables.get("destination_number")
        or variables.get("sip_req_user")
        or variables.get("sip_to_user")
    )
    caller = (
        variables.get("callwarden_caller")
        or _profile_text(oldest, "caller_id_number")
        or variables.get("caller_id_number")
        or variables.get("sip_from_user")
    )
    source = (
        variables.get("sip_network_ip")
        or variables.get("sip_received_ip")
        or _profile_text(newest, "network_addr")
    )
    return [
        CallRecord(
            call_id=fields.required_text(call_id, "variables.call_uuid"),
            leg=leg,
            tenant_id=fields.optional_text(variables.get("callwarden_tenant"), "callwarden_tenant"),
            user_id=fields.optional_text(
                variables.get("callwarden_user") or variables.get("user_name"), "callwarden_user"
            ),
            trunk_id=fields.optional_text(variables.get("callwarden_trunk"), "callwarden_trunk"),
            source_ip=fields.source_ip(source, "variables.sip_network_ip"),
            direction=_direction(variables, is_b_leg),
            caller=fields.optional_text(caller, "caller_id_number"),
            callee=fields.required_text(callee, "destination_number"),
            started_at=started_at,
            answered_at=answered_at,
            ended_at=ended_at,
            duration_s=duration,
            disposition=_disposition(answered_at is not None, variables.get("hangup_cause")),
            campaign=fields.optional_text(
                variables.get("callwarden_campaign"), "callwarden_campaign"
            ),
            attestation=fields.attestation(
                variables.get("callwarden_attestation"), "callwarden_attestation"
            ),
            source_format=_FORMAT,
        )
    ]
