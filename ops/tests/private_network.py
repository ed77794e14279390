"""A private network that a test can partition: a namespace of its own, joined to ours by a
veth pair on a private /30, with the link between them cut and healed on demand.

Only what the test creates is touched: its namespace and its veth pair (unique names),
and the neighbour entries of that pair; never the machine's loopback or other interfaces.
Needs root (CAP_NET_ADMIN) and iproute2's `ip`. No Django imports (like processes.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess

# The /30 is drawn at random from here and checked against every address and route in use.
POOL = ipaddress.ip_network("10.213.0.0/16")


class NetworkUnavailable(Exception):
    """Not root, no iproute2, or the kernel refused the namespace or the veth pair."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetworkUnavailable(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    addresses = json.loads(_ip("ip", "-j", "-4", "addr", "show").stdout or "[]")
    routes = json.loads(_ip("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]")
    used = [
        ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
        for link in addresses
        for info in link.get("addr_info", [])
    ]
    for route in routes:
        if route.get("dst") not in (None, "default"):
            used.append(ipaddress.ip_network(route["dst"], strict=False))
    return used


def _mac() -> str:
    # Locally administered, unicast.
    return "02:" + ":".join(f"{byte:02x}" for byte in secrets.token_bytes(5))


class PrivateNetwork:
    """Our side: `outer_address` on `outer`; the namespace's side: `inner_address`.

    How the cut works. Each side holds a permanent neighbour entry for the other: the
    peer's MAC address, so ARP never runs. cut() points both entries at a MAC address no
    interface has: every frame still leaves, and the receiving end discards it as not
    addressed to it. Neither TCP stack learns anything, as on a partitioned path (no
    RST, no ICMP, no "No route to host"); heal() points them back.

    Not a qdisc: this kernel has no netem (CONFIG_NET_SCH_NETEM is not set), and a qdisc
    that drops (tbf with a 1-byte bucket) drops in the sender's own stack, which TCP sees
    as local congestion: a keepalive probe dropped so is not counted as lost but retried
    every 500 ms, so keepalive never gives up (tried: an idle connection outlived a 20 s
    wait with 1 s keepalives and a 2 s user timeout; with this cut it died at 2.0 s).
    """

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NetworkUnavailable("a network namespace needs root (CAP_NET_ADMIN)")
        if not shutil.which("ip"):
            raise NetworkUnavailable("no ip (iproute2) on PATH")
        token = secrets.token_hex(4)
        self.namespace = f"investiq-{os.getpid()}-{token}"
        self.outer, self.inner = f"iq{token}o", f"iq{token}i"  # interface names: 15 chars at most
        subnet = self._free_subnet()
        self.outer_address, self.inner_address = (str(host) for host in subnet.hosts())
        self.prefix = subnet.prefixlen
        self.is_cut = False
        self._created = False

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        used = _networks_in_use()
        candidates = list(POOL.subnets(new_prefix=30))
        for subnet in random.sample(candidates, 64):
            if not any(subnet.overlaps(network) for network in used):
                return subnet
        raise NetworkUnavailable(f"no free /30 in {POOL}")

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """Run a command inside the namespace: prepend this."""
        return ("ip", "netns", "exec", self.namespace)

    def create(self) -> None:
        self._created = True
        self._outer_mac, self._inner_mac = _mac(), _mac()
        inside = ("ip", "-n", self.namespace)
        _ip("ip", "netns", "add", self.namespace)
        # One command creates both ends, the inner one straight in the namespace.
        _ip(
            *("ip", "link", "add", self.outer, "address", self._outer_mac, "type", "veth"),
            *("peer", "name", self.inner, "address", self._inner_mac, "netns", self.namespace),
        )
        _ip("ip", "addr", "add", f"{self.outer_address}/{self.prefix}", "dev", self.outer)
        _ip(*inside, "addr", "add", f"{self.inner_address}/{self.prefix}", "dev", self.inner)
        _ip("ip", "link", "set", self.outer, "up")
        _ip(*inside, "link", "set", self.inner, "up")
        _ip(*inside, "link", "set", "lo", "up")
        self._point(self._inner_mac, self._outer_mac)

    def _point(self, inner_mac: str, outer_mac: str) -> None:
        """Where each side sends its frames for the other's address."""
        for ip, address, mac, device in (
            (("ip",), self.inner_address, inner_mac, self.outer),
            (("ip", "-n", self.namespace), self.outer_address, outer_mac, self.inner),
        ):
            _ip(*ip, "neigh", "replace", address, "lladdr", mac, "dev", device, "nud", "permanent")

    def cut(self) -> None:
        """Every packet both ways is lost, silently: a partition."""
        self.is_cut = True
        nobody = _mac()
        self._point(nobody, nobody)

    def heal(self) -> None:
        self._point(self._inner_mac, self._outer_mac)
        self.is_cut = False

    def remove(self) -> None:
        """Delete the pair and the namespace (stop what runs inside it first: a namespace
        lives on while a process is in it)."""
        if not self._created:
            return
        # Deleting one end deletes both; done first because deleting the namespace
        # releases its end only later, asynchronously.
        _ip("ip", "link", "del", self.outer, check=False)
        _ip("ip", "netns", "del", self.namespace, check=False)
