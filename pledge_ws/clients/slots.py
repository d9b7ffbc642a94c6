"""``/ws`` connections per worker and per client address, counted from the accepted upgrade
request (not from the end of the handshake), so concurrent upgrades from one address cannot
all slip under ``MAX_CONNECTIONS`` and ``MAX_CONNECTIONS_PER_IP``. No I/O."""

from __future__ import annotations


class ConnectionSlots:
    __slots__ = ("per_ip", "taken")

    def __init__(self) -> None:
        self.taken = 0
        self.per_ip: dict[str, int] = {}

    def take(self, ip: str) -> None:
        self.taken += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    def release(self, ip: str) -> None:
        self.taken -= 1
        left = self.per_ip.get(ip, 1) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def of(self, ip: str) -> int:
        return self.per_ip.get(ip, 0)
