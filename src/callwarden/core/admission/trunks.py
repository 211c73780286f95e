"""Which tenant a call comes from, by the source address of its SIP traffic."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from callwarden.core.model import Trunk

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrunkIndex:
    """Maps a source IP address to the tenant whose trunk covers it (most specific wins)."""

    def __init__(self, trunks: Iterable[Trunk]) -> None:
        self._hosts: dict[str, str] = {}
        networks: list[tuple[_Network, str]] = []
        for trunk in trunks:
            for address in trunk.source_addresses:
                net = ipaddress.ip_network(address, strict=False)
                if net.num_addresses == 1:
                    self._hosts[str(net.network_address)] = trunk.tenant_id
                else:
                    networks.append((net, trunk.tenant_id))
        self._networks = sorted(networks, key=lambda n: n[0].prefixlen, reverse=True)

    def tenant_for(self, source_ip: str) -> str | None:
        """The tenant whose trunk includes `source_ip`, or None (also for a malformed address)."""
        tenant = self._hosts.get(source_ip)
        if tenant is not None or not self._networks:
            return tenant
        try:
            address = ipaddress.ip_address(source_ip)
        except ValueError:
            return None
        canonical = str(address)
        if canonical != source_ip and canonical in self._hosts:
            return self._hosts[canonical]
        for net, tenant_id in self._networks:
            if address.version == net.version and address in net:
                return tenant_id
        return None
