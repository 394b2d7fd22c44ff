"""Who the client is: the peer address, or the address a trusted proxy says it forwarded for.

``X-Forwarded-For`` is only a claim, and any client can send one. It is believed only when the
connection comes from a configured proxy (``serving.trusted_proxies``, env TRUSTED_PROXIES);
then the client is the rightmost address in the header that is not itself a trusted proxy
(each proxy appends the address it saw, so entries left of that were written by the client).
With no trusted proxies (the default) the header is ignored and the client is the peer.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network


class ProxyConfigError(ValueError):
    """A trusted proxy entry that is not an address or a network."""


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    """An address from an X-Forwarded-For entry ('1.2.3.4', '1.2.3.4:80', '[::1]:80'); None if it is not one."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


class ClientResolver:
    def __init__(self, trusted_proxies: tuple[str, ...] | list[str]) -> None:
        networks = []
        for entry in trusted_proxies:
            try:
                networks.append(ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ProxyConfigError(
                    f"trusted proxy {entry!r} is not an address or network (e.g. 10.0.0.5 or 172.16.0.0/12): "
                    "fix serving.trusted_proxies / TRUSTED_PROXIES") from exc
        self.networks = tuple(networks)

    def trusted(self, address: IPv4Address | IPv6Address | None) -> bool:
        return address is not None and any(address in n for n in self.networks)

    def client(self, peer: str, forwarded_for: list[bytes]) -> str:
        """The client address to rate-limit and log; ``forwarded_for``: every X-Forwarded-For header, in order."""
        if not self.networks or not forwarded_for or not self.trusted(_parse(peer)):
            return peer
        hops = ",".join(v.decode("latin-1") for v in forwarded_for).split(",")
        client = peer
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:  # not written by a proxy of ours: stop at the last address we can vouch for
                return client
            client = str(address)
            if not self.trusted(address):
                return client
        return client
