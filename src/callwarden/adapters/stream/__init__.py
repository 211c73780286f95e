"""Usage stream backends, chosen by URL: none (in-process) or ``nats://host:port`` (JetStream).

The port they implement is :class:`callwarden.services.stream.UsageStream`.
"""

from __future__ import annotations

from callwarden.services.stream import DEFAULT_MAX_DELIVER, UsageStream

__all__ = ["stream_from_url"]


def stream_from_url(
    url: str | None,
    *,
    stream_name: str = "CALLWARDEN_USAGE",
    subject_prefix: str = "callwarden.usage",
    max_deliver: int = DEFAULT_MAX_DELIVER,
    ack_wait_s: float = 30.0,
    max_age_s: float | None = None,
    batch_size: int = 500,
) -> UsageStream:
    """The usage stream the settings name: in-process when `url` is None (the embedded
    default), NATS JetStream for ``nats://host:port`` or ``tls://host:port`` (several servers
    comma-separated). JetStream connects lazily, on the first publish or subscribe, so building
    the platform needs no running server. `max_age_s` of None or 0 keeps stream messages
    without a time limit. `batch_size` is how many records a consumer's handler gets at once.

    Raises ValueError, naming the URL, for any other scheme.
    """
    if url is None:
        from callwarden.adapters.stream.memory import InProcessStream

        return InProcessStream(max_deliver=max_deliver, batch_size=batch_size)
    servers = [part.strip() for part in url.split(",")]
    for server in servers:
        scheme = server.split("://", 1)[0].lower() if "://" in server else ""
        if scheme not in ("nats", "tls") or not server.split("://", 1)[1]:
            raise ValueError(
                f"unsupported NATS URL {url!r}: use nats://host:port (or tls://host:port)"
            )
    from callwarden.adapters.stream.nats import JetStreamStream

    return JetStreamStream(
        servers,
        stream_name=stream_name,
        subject_prefix=subject_prefix,
        max_deliver=max_deliver,
        ack_wait_s=ack_wait_s,
        max_age_s=max_age_s or None,
        batch_size=batch_size,
    )
