"""The header field grammar a redirect server reads: Via, CSeq, name-addr with parameters,
the user part of SIP and tel URIs, comma-separated lists, and quoted strings (RFC 3261
section 25, RFC 3966). Every parser raises `ParseError` naming the header it could not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from callwarden.adapters.sip.message import ParseError
from callwarden.core.admission.decision import Decision

MAGIC_COOKIE = "z9hG4bK"
"""The branch prefix that marks an RFC 3261 transaction id (section 8.1.1.7)."""

_VIA = re.compile(
    r"SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z0-9.!%*_+`'~\-]+)\s+"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?:\s*:\s*(?P<port>[0-9]{1,5}))?"
    r"\s*(?P<params>;.*)?",
    re.IGNORECASE,
)
_CSEQ = re.compile(r"([0-9]{1,10})\s+([A-Za-z0-9.!%*_+`'~\-]+)")
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Via:
    """The parts of a Via value: transport, sent-by host and port, and parameters in order."""

    transport: str
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...]

    def param(self, name: str) -> str | None:
        """A parameter's value (None when absent or valueless; see `has`)."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    def has(self, name: str) -> bool:
        """Whether the parameter is present, with or without a value."""
        return any(key == name for key, _ in self.params)

    @property
    def branch(self) -> str | None:
        """The branch parameter, the transaction id of RFC 3261 requests."""
        return self.param("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """Host (lower case) and port as sent, for transaction matching."""
        return self.host.lower(), self.port

    def serialize(self) -> str:
        """The Via value on the wire."""
        sent_by = self.host if self.port is None else f"{self.host}:{self.port}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"SIP/2.0/{self.transport} {sent_by}{params}"


def parse_via(value: str) -> Via:
    """One Via value (not a comma-separated list): `SIP/2.0/UDP host:port;branch=...`."""
    match = _VIA.fullmatch(value.strip())
    if match is None:
        raise ParseError(f"Via {value[:60]!r} is not 'SIP/2.0/TRANSPORT host[:port];params'")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ParseError(f"Via port {port} is out of range")
    return Via(
        match["transport"].upper(),
        match["host"],
        port,
        parse_params(match["params"] or "", "Via"),
    )


def with_source(via: Via, source_ip: str, source_port: int) -> Via:
    """The top Via as a server transport returns it: `received` when the sent-by host is not
    the packet's source address (RFC 3261 section 18.2.1), and the `rport` value filled in
    when the client asked for it (RFC 3581)."""
    host = via.host.strip("[]").lower()
    needs_received = host != source_ip.lower()
    needs_rport = via.has("rport") and via.param("rport") is None
    if not needs_received and not needs_rport:
        return via
    params = [
        (k, str(source_port) if k == "rport" and needs_rport else v)
        for k, v in via.params
        if not (k == "received" and needs_received)
    ]
    if needs_received:
        params.append(("received", source_ip))
    return Via(via.transport, via.host, via.port, tuple(params))


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header: sequence number and method."""

    number: int
    method: str


def parse_cseq(value: str) -> CSeq:
    """`CSeq: 314159 INVITE`, with a number below 2**31 (RFC 3261 section 8.1.1.5)."""
    match = _CSEQ.fullmatch(value.strip())
    if match is None:
        raise ParseError(f"CSeq {value[:40]!r} is not 'NUMBER METHOD'")
    number = int(match[1])
    if number >= 2**31:
        raise ParseError("the CSeq number is not below 2**31")
    return CSeq(number, match[2])


def parse_params(text: str, header: str) -> tuple[tuple[str, str | None], ...]:
    """`;name=value;flag` into (lower-cased name, value or None) pairs; quoted values kept."""
    params: list[tuple[str, str | None]] = []
    for part in split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not name:
            raise ParseError(f"{header} has a parameter without a name")
        params.append((name, value.strip() if eq else None))
    return tuple(params)


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split at `separator` except inside quoted strings and angle brackets."""
    if '"' not in text and "<" not in text:
        return text.split(separator)
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    depth = 0
    for ch in text:
        if quoted:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def split_list(value: str) -> list[str]:
    """The values of a comma-separated header (Via, P-Asserted-Identity...), trimmed."""
    return [part.strip() for part in split_outside_quotes(value, ",") if part.strip()]


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From, To, P-Asserted-Identity or Remote-Party-ID value: URI and header parameters."""

    uri: str
    params: tuple[tuple[str, str | None], ...]

    def param(self, name: str) -> str | None:
        """A header parameter's value (tag, privacy...), or None."""
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse_name_addr(value: str, header: str) -> NameAddr:
    """`"Display" <sip:user@host>;tag=x` or `sip:user@host;tag=x` (RFC 3261 section 20.10)."""
    text = value.strip()
    rest = text
    display = text.startswith('"')
    if display:
        close = _closing_quote(text)
        if close < 0:
            raise ParseError(f"{header} has an unterminated quoted display name")
        rest = text[close + 1 :]
    open_at = rest.find("<")
    if open_at >= 0:
        close_at = rest.find(">", open_at)
        if close_at < 0:
            raise ParseError(f"{header} has '<' without '>'")
        uri = rest[open_at + 1 : close_at].strip()
        params = rest[close_at + 1 :]
    else:
        if display:
            raise ParseError(f"{header} has a display name but no <URI>")
        uri, _, after = text.partition(";")
        uri, params = uri.strip(), ";" + after if after else ""
    if ":" not in uri:
        raise ParseError(f"{header} URI {uri[:40]!r} has no scheme")
    return NameAddr(uri, parse_params(params, header))


def _closing_quote(text: str) -> int:
    escaped = False
    for i in range(1, len(text)):
        ch = text[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i
    return -1


def uri_user(uri: str) -> str | None:
    """The user part of a sip:/sips: URI or the number of a tel: URI, unescaped and without
    parameters (`sip:+4420...;npdi@host` and `tel:+4420...;phone-context=x` give `+4420...`).
    None for a URI without a user part or of another scheme."""
    scheme, _, rest = uri.strip().partition(":")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        userinfo, at, _ = rest.partition("@")
        if not at:
            return None
        user = userinfo.split(":", 1)[0]
    elif scheme == "tel":
        user = rest
    else:
        return None
    user = unquote(user.split(";", 1)[0], errors="replace")
    if _UNSAFE_TEXT.search(user):
        raise ParseError(f"the user part of {uri[:60]!r} contains control characters")
    return user


def uri_scheme(uri: str) -> str:
    """The scheme of a URI, lower case."""
    return uri.partition(":")[0].strip().lower()


def quoted(text: str, max_length: int = 200) -> str:
    """`text` as a SIP quoted-string: control characters become spaces, quotes and
    backslashes are escaped, and it is cut to `max_length` characters first."""
    clean = _UNSAFE_TEXT.sub(" ", text[:max_length])
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def refusal_reason(decision: Decision, cause: int) -> str:
    """The value of a refusal's Reason header (RFC 3326): the SIP cause, then the clause ids
    and the reason as a quoted text, written alike by the redirect interface and by Kamailio
    over evapi, so operators grep one format."""
    clauses = ", ".join(decision.clause_ids)
    text = f"{clauses}: {decision.reason}" if clauses else decision.reason
    return f"SIP;cause={cause};text={quoted(text)}"
