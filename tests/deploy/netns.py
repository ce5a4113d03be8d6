"""Network namespaces joined to the test's namespace by veth links (for the fleet test).

Each :class:`Link` is one namespace plus one veth pair: the host end stays in the caller's
namespace with ``.1`` of a private /30, the other end goes into the namespace with ``.2``.
Names carry a random tag so two runs can overlap; the /30s come from a random 10.x.y.0/24 not
routed here yet. :meth:`Link.cut` takes the namespace's end down (the host end then has no
carrier and drops what is sent to it, so nothing leaks out through a default route) and
:meth:`Link.restore` brings it back up. Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

__all__ = ["Link", "make_links", "netns_unavailable", "remove_links", "shape"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def netns_unavailable() -> str | None:
    """Why links cannot be made here, or None when they can."""
    import os

    if os.geteuid() != 0:
        return "the fleet test makes network namespaces and veth links: it needs root"
    if shutil.which("ip") is None:
        return "the fleet test needs iproute2 (`ip netns`), which is not installed"
    probe = f"esfprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` does not work here: {exc}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Link:
    """One namespace and its veth link to the caller's namespace."""

    netns: str
    host_dev: str
    ns_dev: str
    host_addr: str
    ns_addr: str
    cuts: int = 0
    qdiscs: list[str] = field(default_factory=list)

    def cut(self) -> None:
        _ip("-n", self.netns, "link", "set", self.ns_dev, "down")
        self.cuts += 1

    def restore(self) -> None:
        _ip("-n", self.netns, "link", "set", self.ns_dev, "up")

    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program inside this namespace."""
        return ["ip", "netns", "exec", self.netns]


def _free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    rng = random.SystemRandom()
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{rng.randrange(100, 250)}.{rng.randrange(0, 256)}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.x.y.0/24 for the test links")


def make_links(n: int) -> list[Link]:
    """Make ``n`` namespaces with a veth link each; on failure, remove what was made."""
    tag = secrets.token_hex(3)
    subnet = _free_subnet()
    links: list[Link] = []
    try:
        for i, net in enumerate(list(subnet.subnets(new_prefix=30))[:n]):
            host, peer = list(net.hosts())
            link = Link(f"esf-{tag}-{i}", f"esf{tag}h{i}", f"esf{tag}s{i}", str(host), str(peer))
            _ip("netns", "add", link.netns)
            links.append(link)
            _ip("link", "add", link.host_dev, "type", "veth", "peer", "name", link.ns_dev)
            _ip("link", "set", link.ns_dev, "netns", link.netns)
            _ip("addr", "add", f"{host}/30", "dev", link.host_dev)
            _ip("link", "set", link.host_dev, "up")
            _ip("-n", link.netns, "addr", "add", f"{peer}/30", "dev", link.ns_dev)
            _ip("-n", link.netns, "link", "set", link.ns_dev, "up")
            _ip("-n", link.netns, "link", "set", "lo", "up")
    except BaseException:
        remove_links(links)
        raise
    return links


def remove_links(links: list[Link]) -> None:
    """Delete the veth pairs and namespaces (errors ignored: best effort at teardown)."""
    for link in links:
        subprocess.run(["ip", "link", "del", link.host_dev], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", link.netns], capture_output=True, timeout=10)


def shape(link: Link) -> str:
    """Degrade ``link`` both ways: netem delay and loss where the kernel has netem, else a tbf
    rate limit (queueing delay, no loss). Returns what was applied, for the test's report."""
    netem = ["netem", "delay", "20ms", "5ms", "loss", "1%"]
    tbf = ["tbf", "rate", "4mbit", "burst", "16kb", "latency", "400ms"]
    applied = ""
    for spec, what in (
        (netem, "netem delay 20ms+-5ms loss 1% both ways"),
        (tbf, "tbf rate 4mbit both ways (kernel without netem: no delay/loss emulation)"),
    ):
        try:
            _ip_tc(["qdisc", "add", "dev", link.host_dev, "root", *spec])
        except subprocess.CalledProcessError:
            continue
        _ip_tc(["-n", link.netns, "qdisc", "add", "dev", link.ns_dev, "root", *spec])
        applied = what
        break
    if not applied:
        raise RuntimeError("neither netem nor tbf is available to shape a link")
    link.qdiscs.append(applied)
    return applied


def _ip_tc(args: list[str]) -> None:
    subprocess.run(["tc", *args], check=True, capture_output=True, timeout=10)
