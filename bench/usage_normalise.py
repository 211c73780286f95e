"""Normalising throughput: usage records per second read from each raw format, on one core.

For each format a synthetic file of `--records` records (a realistic mix of answered, unanswered
and failed calls) is split into raw items and normalised into records, as file ingestion does.
The baseline, measured in the same run over the same text, is the bare parse of that format
(orjson.loads per JSON document, csv.reader per CSV row, str.split per syslog line): the ratio
says how much the normaliser adds to simply reading the input. A third column is what bulk
ingestion does per unit (`services.usage_prepare.prepare_unit`: normalised, checked against
the store's limits, turned into a storage row), where callwarden's own CSV and JSON calls take
the quick path (`core.usage.fast_rows`).

Figures are the best of `--repeats` runs, timed in CPU seconds of this process
(`time.process_time`), so that other work on a shared machine does not count against them.
Run: `python -m bench.usage_normalise [--quick]`.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo

import orjson

from callwarden.core.usage import UsageFormat, UsageRecord, normalise, split
from callwarden.core.usage.schema import fields_for, to_json, to_text_fields
from callwarden.services.usage_prepare import prepare_unit

START = 1_710_230_400  # 2024-03-12T08:00:00Z


def _freeswitch(n: int) -> str:
    lines = []
    for i in range(n):
        start = START + i
        answered = i % 3 != 0
        variables = {
            "uuid": f"5c0d7e21-0b9a-4b3c-8f0e-{i:012d}",
            "call_uuid": f"5c0d7e21-0b9a-4b3c-8f0e-{i:012d}",
            "sip_from_user": "1001",
            "sip_network_ip": f"198.51.100.{i % 250}",
            "sip_authorized": "true",
            "user_name": f"{1000 + i % 50}",
            "callwarden_tenant": f"tenant-{i % 20}",
            "callwarden_campaign": "spring%20renewals",
            "hangup_cause": "NORMAL_CLEARING" if answered else "NO_ANSWER",
            "start_epoch": str(start),
            "start_uepoch": str(start * 1_000_000),
            "answer_epoch": str(start + 5) if answered else "0",
            "answer_uepoch": str((start + 5) * 1_000_000) if answered else "0",
            "end_epoch": str(start + 65),
            "end_uepoch": str((start + 65) * 1_000_000),
            "duration": "65",
            "billsec": "60" if answered else "0",
            "sip_call_id": f"a84b4c76e66710%40pc{i}.example.net",
            "channel_name": "sofia%2Finternal%2F1001%40tenant-a.example.net",
        }
        profile = {
            "caller_id_number": "+442079460999",
            "destination_number": f"+4420794{i % 100000:05d}",
            "uuid": variables["uuid"],
            "network_addr": variables["sip_network_ip"],
        }
        document = {
            "core-uuid": "6f0b2a4e-4c1d-4f5e-9a57-2f1f0a3c9b11",
            "channel_data": {"state": "CS_REPORTING", "direction": "inbound"},
            "variables": variables,
            "callflow": [{"caller_profile": profile, "times": {"created_time": "0"}}],
        }
        lines.append(orjson.dumps(document).decode())
    return "\n".join(lines)


def _asterisk(n: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for i in range(n):
        answered = i % 3 != 0
        minute, second = divmod(i % 3600, 60)
        writer.writerow(
            [
                f"tenant-{i % 20}",
                "+48221234001",
                f"+4420794{i % 100000:05d}",
                "from-internal",
                '"Agent One" <+48221234001>',
                f"PJSIP/agent1001-{i:08x}",
                f"PJSIP/carrier1-{i:08x}",
                "Dial",
                "PJSIP/+442079460123@carrier1,60",
                f"2024-03-12 09:{minute:02d}:{second:02d}",
                f"2024-03-12 09:{minute:02d}:{second:02d}" if answered else "",
                f"2024-03-12 10:{minute:02d}:{second:02d}",
                3600,
                3600 if answered else 0,
                "ANSWERED" if answered else "NO ANSWER",
                "DOCUMENTATION",
                f"1710231302.{i}",
                "",
            ]
        )
    return out.getvalue()


def _kamailio(n: int) -> str:
    lines = []
    for i in range(n):
        start = START + i
        if i % 3:
            lines.append(
                f"Mar 12 09:21:00 sip-edge-1 kamailio[2217]: NOTICE: acc [acc_cdr.c:395]: "
                f"start_time={start}.250000; end_time={start + 60}.750000; duration=60.500000; "
                f"callid=call-{i}@198.51.100.27; src_user=+442079460995; "
                f"dst_user=+4420794{i % 100000:05d}; src_ip=198.51.100.{i % 250}; "
                f"tenant=tenant-{i % 20}; direction=outbound"
            )
        else:
            lines.append(
                f"Mar 12 09:15:02 sip-edge-1 kamailio[2211]: NOTICE: acc [acc.c:286]: "
                f"ACC: call missed: timestamp={start};method=INVITE;from_tag=a{i};to_tag=b{i};"
                f"call_id=missed-{i}@pc33.example.net;code=486;reason=Busy Here;"
                f"src_user=+442079460999;dst_user=+4420794{i % 100000:05d};"
                f"src_ip=198.51.100.{i % 250};tenant=tenant-{i % 20};direction=outbound"
            )
    return "\n".join(lines)


def _callwarden_records(n: int) -> list[UsageRecord]:
    items = list(split("asterisk-csv", _asterisk(n)))
    return [normalise("asterisk-csv", item, default_tz="Europe/Warsaw")[0] for item in items]


def _callwarden_json(n: int) -> str:
    return "\n".join(orjson.dumps(to_json(record)).decode() for record in _callwarden_records(n))


def _callwarden_csv(n: int) -> str:
    records = _callwarden_records(n)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields_for(records[0].kind))
    for record in records:
        writer.writerow(to_text_fields(record))
    return out.getvalue()


def _json_baseline(text: str) -> int:
    count = 0
    for line in text.split("\n"):
        if line:
            orjson.loads(line)
            count += 1
    return count


def _csv_baseline(text: str) -> int:
    return sum(1 for _ in csv.reader(text.split("\n")) if _)


def _syslog_baseline(text: str) -> int:
    return sum(1 for line in text.split("\n") if line and line.split(";"))


FORMATS: dict[str, tuple[Callable[[int], str], Callable[[str], int]]] = {
    "freeswitch-json": (_freeswitch, _json_baseline),
    "asterisk-csv": (_asterisk, _csv_baseline),
    "kamailio-acc-syslog": (_kamailio, _syslog_baseline),
    "callwarden-json": (_callwarden_json, _json_baseline),
    "callwarden-csv": (_callwarden_csv, _csv_baseline),
}


def _normalise_all(fmt: str, text: str) -> int:
    count = 0
    for item in split(fmt, text):
        count += len(normalise(fmt, item, default_tz="Europe/Warsaw"))
    return count


def _prepare_all(fmt: str, text: str) -> int:
    count = 0
    zone = ZoneInfo("Europe/Warsaw")
    for item in split(fmt, text):
        rows, _ = prepare_unit(UsageFormat(fmt), item.text, zone)
        count += len(rows)
    return count


def _best(run: Callable[[], int], repeats: int) -> tuple[int, float]:
    best = float("inf")
    count = 0
    for _ in range(repeats):
        began = time.process_time()
        count = run()
        best = min(best, time.process_time() - began)
    return count, best


def main(argv: list[str]) -> int:
    """Measure every format and print records per second beside the bare-parse baseline."""
    parser = argparse.ArgumentParser(prog="python -m bench.usage_normalise")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 records, 2 repeats")
    args = parser.parse_args(argv)
    records, repeats = (10_000, 2) if args.quick else (args.records, args.repeats)
    print(f"normalising {records:,} records per format, best of {repeats}")
    print(f"{'format':<22}{'records/s':>12}{'bare parse/s':>14}{'ratio':>8}{'prepared/s':>12}")
    for fmt, (make, baseline) in FORMATS.items():
        text = make(records)
        count, seconds = _best(partial(_normalise_all, fmt, text), repeats)
        base_count, base_seconds = _best(partial(baseline, text), repeats)
        prepared_count, prepared_seconds = _best(partial(_prepare_all, fmt, text), repeats)
        rate, base_rate = count / seconds, base_count / base_seconds
        prepared = prepared_count / prepared_seconds
        print(
            f"{fmt:<22}{rate:>12,.0f}{base_rate:>14,.0f}{base_rate / rate:>7.1f}x{prepared:>12,.0f}"
        )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
