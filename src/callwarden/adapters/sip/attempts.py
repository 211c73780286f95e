"""Reading a call attempt from an INVITE.

- destination: the user part of the Request-URI (`sip:+442079460000@gw;user=phone`, `tel:...`);
- caller: P-Asserted-Identity, else Remote-Party-ID, else the From user; None when withheld
  (an anonymous user such as `sip:anonymous@anonymous.invalid`, `Privacy: id`, or a
  Remote-Party-ID with `privacy=full` or `privacy=uri`);
- call id: the Call-ID;
- source address: the packet's.

From a trusted proxy (the SIP servers the operator lists) the `X-Callwarden-*` headers add
what only it knows: `X-Callwarden-Tenant` (else the admission service identifies the tenant by
the source address through its trunks), `X-Callwarden-User`, `X-Callwarden-Direction: inbound`
(outbound by default) and `X-Callwarden-Source-IP` (the address the call really came from).
From anyone else they are ignored: otherwise a caller could name another tenant, or claim an
inbound call to escape the rules on outbound ones.

A value from a trusted proxy that cannot be used raises `ParseError` naming the header,
answered 400.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass

from callwarden.adapters.sip.fields import parse_name_addr, split_list, uri_user
from callwarden.adapters.sip.incoming import IncomingRequest
from callwarden.adapters.sip.message import ParseError
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.rules import WITHHELD

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TENANT_HEADER = "X-Callwarden-Tenant"
USER_HEADER = "X-Callwarden-User"
DIRECTION_HEADER = "X-Callwarden-Direction"
SOURCE_IP_HEADER = "X-Callwarden-Source-IP"

MAX_DESTINATION = 128
MAX_CALLER = 64
MAX_CALL_ID = 256
_TENANT_ID = re.compile(r"tn_[0-9a-f]{16}")
_USER_ID = re.compile(r"us_[0-9a-f]{16}")
_HIDDEN_RPID = frozenset({"full", "uri"})


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The addresses whose X-Callwarden-* headers are believed."""

    networks: tuple[Network, ...]

    def trusts(self, address: str) -> bool:
        """Whether a packet from `address` may add X-Callwarden-* headers."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)


def normalise_address(address: str) -> str:
    """An IP address as the trunk index knows it: IPv4-mapped IPv6 addresses (from a
    dual-stack socket) as plain IPv4; anything unparseable unchanged."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def call_attempt(
    invite: IncomingRequest, source_ip: str, trusted: TrustedProxies, at: float
) -> CallAttempt:
    """The call attempt an INVITE asks about, or `ParseError` naming the unusable header."""
    request = invite.request
    destination = uri_user(request.uri) or ""
    if len(destination) > MAX_DESTINATION:
        raise ParseError(
            f"the Request-URI user part is longer than {MAX_DESTINATION} characters",
            request=request,
        )
    if len(invite.call_id) > MAX_CALL_ID:
        raise ParseError(f"Call-ID is longer than {MAX_CALL_ID} characters", request=request)
    caller = _caller(invite)
    if caller is not None and len(caller) > MAX_CALLER:
        raise ParseError(f"the caller is longer than {MAX_CALLER} characters", request=request)
    attempt = CallAttempt(
        call_id=invite.call_id,
        destination=destination,
        direction=Direction.OUTBOUND,
        at=at,
        caller=caller,
        source_ip=source_ip,
    )
    if not trusted.trusts(source_ip):
        return attempt
    return dataclasses.replace(
        attempt,
        direction=_direction(invite),
        tenant_id=_id_header(invite, TENANT_HEADER, _TENANT_ID, "tenant id tn_<16 hex>"),
        user_id=_id_header(invite, USER_HEADER, _USER_ID, "user id us_<16 hex>"),
        source_ip=_source_ip(invite, source_ip),
    )


def _caller(invite: IncomingRequest) -> str | None:
    request = invite.request
    privacy = request.get("Privacy") or ""
    if "id" in (token.strip().lower() for token in privacy.split(";")):
        return None
    try:
        for name in ("P-Asserted-Identity", "Remote-Party-ID"):
            value = request.get(name)
            if value:
                first = parse_name_addr(split_list(value)[0], name)
                if (first.param("privacy") or "").lower() in _HIDDEN_RPID:
                    return None
                return _presented(uri_user(first.uri))
    except (ParseError, IndexError) as exc:
        reason = exc.reason if isinstance(exc, ParseError) else "an identity header is empty"
        raise ParseError(reason, request=request) from exc
    return _presented(uri_user(invite.from_.uri))


def _presented(user: str | None) -> str | None:
    if user is None or user.strip().lower() in WITHHELD:
        return None
    return user


def _direction(invite: IncomingRequest) -> Direction:
    value = invite.request.get(DIRECTION_HEADER)
    if value is None:
        return Direction.OUTBOUND
    try:
        return Direction(value.strip().lower())
    except ValueError:
        raise ParseError(
            f"{DIRECTION_HEADER} is {value[:20]!r}, not inbound or outbound",
            request=invite.request,
        ) from None


def _id_header(
    invite: IncomingRequest, name: str, pattern: re.Pattern[str], what: str
) -> str | None:
    value = invite.request.get(name)
    if value is None:
        return None
    value = value.strip()
    if not pattern.fullmatch(value):
        raise ParseError(f"{name} {value[:40]!r} is not a {what}", request=invite.request)
    return value


def _source_ip(invite: IncomingRequest, packet_source: str) -> str:
    claimed = invite.request.get(SOURCE_IP_HEADER)
    if claimed is None:
        return packet_source
    try:
        return normalise_address(str(ipaddress.ip_address(claimed.strip())))
    except ValueError:
        raise ParseError(
            f"{SOURCE_IP_HEADER} {claimed[:45]!r} is not an IP address", request=invite.request
        ) from None
