"""Asterisk Master.csv rows (cdr_csv) into call records.

cdr_csv writes a fixed column order without a header: accountcode, src, dst, dcontext, clid,
channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition,
amaflags, then uniqueid (loguniqueid), userfield (loguserfield) and, with newcdrcolumns,
peeraccount, linkedid and sequence. Times are "YYYY-MM-DD HH:MM:SS" in the server's local time
(`default_tz`; use UTC when cdr.conf has usegmtime). An unanswered call has an empty answer.

The account code is the tenant. The call id is the linkedid when present (all CDRs of one call
share it), else the uniqueid; the leg is "a" for the channel that started the call and the
channel's uniqueid otherwise, followed by "#<sequence>" when the sequence column is written
(Asterisk writes several CDRs for one channel across transfers). The userfield may carry
callwarden's facts as `key=value` pairs separated by ";" (direction, user, trunk, campaign,
attestation, tenant); see docs/usage.md.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, tzinfo

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
from callwarden.core.usage.times import parse_local

__all__ = ["COLUMNS", "normalise_asterisk"]

_FORMAT = UsageFormat.ASTERISK_CSV.value
COLUMNS: tuple[str, ...] = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
_EXTRA_COLUMNS: dict[int, tuple[str, ...]] = {
    16: (),
    17: ("uniqueid",),
    18: ("uniqueid", "userfield"),
    19: ("peeraccount", "linkedid", "sequence"),
    20: ("uniqueid", "peeraccount", "linkedid", "sequence"),
    21: ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}
_DISPOSITIONS = {
    "ANSWERED": Disposition.ANSWERED,
    "NO ANSWER": Disposition.NO_ANSWER,
    "BUSY": Disposition.BUSY,
    "FAILED": Disposition.FAILED,
    "CONGESTION": Disposition.FAILED,
    "CANCEL": Disposition.CANCELLED,
}
_CLID_NUMBER = re.compile(r"<([^>]*)>\s*$")
_INBOUND_CONTEXT = re.compile(r"from-(?:trunk|pstn|external|did|carrier)|inbound", re.IGNORECASE)
_USERFIELD_KEYS = frozenset({"direction", "user", "trunk", "campaign", "attestation", "tenant"})


def _row(text: str) -> list[str]:
    try:
        if "\n" not in text:
            return next(csv.reader((text,)))
        rows = fields.csv_rows(text)
    except (csv.Error, StopIteration) as exc:
        raise UsageError(f"not a CSV row: {exc}", field="record") from None
    if len(rows) != 1:
        raise UsageError("expected exactly one CSV row", field="record")
    return rows[0]


def _userfield(text: str | None) -> dict[str, str]:
    """callwarden's `key=value;key=value` facts in the userfield; other content is ignored."""
    if not text or "=" not in text:
        return {}
    facts: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if sep and key in _USERFIELD_KEYS:
            facts[key] = value.strip()
    return facts


def _time(text: str, field: str, default_tz: tzinfo) -> datetime | None:
    text = text.strip()
    return parse_local(text, field, default_tz) if text else None


def normalise_asterisk(item: RawItem, default_tz: tzinfo) -> list[UsageRecord]:
    """One call record from one Master.csv row."""
    cells = _row(item.text)
    extra = _EXTRA_COLUMNS.get(len(cells))
    if extra is None:
        raise UsageError(
            f"a Master.csv row has 16 to 21 columns, this one has {len(cells)}", field="record"
        )
    row = dict(zip(COLUMNS + extra, cells, strict=True))
    if row["accountcode"] == "accountcode" and row["start"] == "start":
        raise UsageError("this is a header row, not a CDR", field="record")
    uniqueid = fields.optional_text(row.get("uniqueid"), "uniqueid")
    linkedid = fields.optional_text(row.get("linkedid"), "linkedid")
    sequence = fields.optional_text(row.get("sequence"), "sequence")
    if uniqueid is None and linkedid is None:
        raise UsageError(
            "uniqueid is missing: enable loguniqueid in cdr.conf so each CDR has an id",
            field="uniqueid",
        )
    if linkedid is not None:
        call_id = linkedid
        leg = "a" if uniqueid is None or uniqueid == linkedid else uniqueid
    else:
        call_id = uniqueid or ""
        leg = "a"
    if sequence is not None:
        leg = f"{leg}#{sequence}"

    disposition_text = row["disposition"].strip().upper()
    disposition = _DISPOSITIONS.get(disposition_text)
    if disposition is None:
        raise UsageError(
            f"disposition {row['disposition']!r} is not ANSWERED, NO ANSWER, BUSY, FAILED or "
            "CONGESTION",
            field="disposition",
        )
    started_at = _time(row["start"], "start", default_tz)
    if started_at is None:
        raise UsageError("start is missing", field="start")
    ended_at = _time(row["end"], "end", default_tz)
    if disposition is Disposition.ANSWERED:
        answered_at = _time(row["answer"], "answer", default_tz)
        if answered_at is None:
            raise UsageError("answer is missing for an ANSWERED call", field="answer")
        billsec = fields.whole_seconds(row["billsec"], "billsec")
        duration = billsec if billsec is not None else 0
    else:
        answered_at = None
        duration = 0
    fields.whole_seconds(row["duration"], "duration")

    facts = _userfield(row.get("userfield"))
    direction = fields.direction(facts.get("direction"), "userfield direction")
    if direction is None:
        inbound = _INBOUND_CONTEXT.search(row["dcontext"])
        direction = Direction.INBOUND if inbound else Direction.OUTBOUND
    caller = row["src"].strip()
    if not caller:
        match = _CLID_NUMBER.search(row["clid"])
        caller = match.group(1) if match else ""
    tenant = facts.get("tenant") or row["accountcode"]
    return [
        CallRecord(
            call_id=fields.required_text(call_id, "uniqueid"),
            leg=leg,
            tenant_id=fields.optional_text(tenant, "accountcode"),
            user_id=fields.optional_text(facts.get("user"), "userfield user"),
            trunk_id=fields.optional_text(facts.get("trunk"), "userfield trunk"),
            source_ip=None,
            direction=direction,
            caller=fields.optional_text(caller, "src"),
            callee=fields.required_text(row["dst"], "dst"),
            started_at=started_at,
            answered_at=answered_at,
            ended_at=ended_at,
            duration_s=duration,
            disposition=disposition,
            campaign=fields.optional_text(facts.get("campaign"), "userfield campaign"),
            attestation=fields.attestation(facts.get("attestation"), "userfield attestation"),
            source_format=_FORMAT,
        )
    ]
