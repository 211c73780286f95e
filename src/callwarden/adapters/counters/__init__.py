"""Counters backends, chosen by URL: ``memory://`` (in-process) or ``redis://host:port/db``.

Modelled on the storage URLs of the ``limits`` library: limit arithmetic lives in
:mod:`callwarden.core.limits`, the interface in :mod:`callwarden.core.counters`, and each
backend here implements it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from callwarden.core.counters import Counters

__all__ = ["counters_from_url"]

_FLOAT_OPTIONS = ("socket_timeout", "connect_timeout", "ttl_slack_s", "sweep_interval_s")
_INT_OPTIONS = ("retries", "max_connections")


def counters_from_url(url: str) -> Counters:
    """Build the counters backend a URL names.

    - ``memory://`` (options: ``?sweep_interval_s=60``): in-process, for one instance.
    - ``redis://[user:password@]host:port/db`` or ``rediss://...`` (options:
      ``socket_timeout`` and ``connect_timeout`` in seconds, ``retries``, ``max_connections``,
      ``prefix``, ``ttl_slack_s``): shared by every instance using the same server.

    Raises ValueError, naming the URL, for another scheme or a malformed option.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = {
        k: options.pop(k) for k in list(options) if k in (*_FLOAT_OPTIONS, *_INT_OPTIONS, "prefix")
    }
    try:
        floats = {k: float(v) for k, v in ours.items() if k in _FLOAT_OPTIONS}
        ints = {k: int(v) for k, v in ours.items() if k in _INT_OPTIONS}
    except ValueError as exc:
        raise ValueError(f"counters URL {url!r}: bad option value ({exc})") from None
    if scheme == "memory":
        if options or ints or set(floats) - {"sweep_interval_s"} or "prefix" in ours:
            raise ValueError(f"counters URL {url!r}: memory:// takes only sweep_interval_s")
        from callwarden.adapters.counters.memory import MemoryCounters

        return MemoryCounters(**floats)
    if scheme in ("redis", "rediss"):
        if "sweep_interval_s" in floats:
            raise ValueError(f"counters URL {url!r}: sweep_interval_s is for memory:// only")
        if not parts.hostname:
            raise ValueError(f"counters URL {url!r}: no host")
        from callwarden.adapters.counters.redis import RedisCounters

        rest = urlunsplit(parts._replace(query=urlencode(options)))
        return RedisCounters.from_url(
            rest,
            socket_timeout=floats.get("socket_timeout", 0.2),
            connect_timeout=floats.get("connect_timeout"),
            retries=ints.get("retries", 1),
            max_connections=ints.get("max_connections"),
            prefix=ours.get("prefix", "cw"),
            ttl_slack_s=floats.get("ttl_slack_s", 10.0),
        )
    raise ValueError(
        f"unsupported counters URL {url!r}: use memory:// or redis://host:port/db (or rediss://)"
    )
