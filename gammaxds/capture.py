"""Transparent capture: the iptables rules that send a pod's Service traffic to its sidecar.

In the pod's network namespace, the `nat` table gets one chain of ours, `GAMMAXDS_OUTPUT`, jumped to from
`OUTPUT`, holding one rule: TCP whose destination is in the Service CIDR is `REDIRECT`ed to port 15001 (the
kernel maps locally generated packets to 127.0.0.1, and keeps the original destination for
`SO_ORIGINAL_DST`, which Envoy's `original_dst` listener filter reads). Nothing else is captured: traffic to
pod IPs (Service backends) goes out untouched.

Why no uid/gid exclusion for Envoy (Istio excludes uid 1337): Envoy sends to endpoints, which are pod IPs,
outside the Service CIDR, so its routed traffic never matches. The one connection Envoy could send back into
the Service CIDR is a passthrough of a captured address that has no Service listener; for a known cluster IP
on a port its Service lacks, the sidecar's `virtualOutbound` closes the connection instead (it would loop).
An address in the Service CIDR that belongs to no Service at all is still passed through, and is captured
again until Envoy gives up: dialing such an address is an error in any cluster. All this holds as long as
the Service CIDR is disjoint from pod IPs and the xDS server address; `validate_cidr` refuses loopback
overlaps, the one mistake that would capture Envoy's own listener and admin traffic.

Everything lives in one named chain so `apply` is idempotent (flush and refill our chain, add the jump only
when missing) and `remove` is complete (delete every jump, flush, delete the chain).
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
from collections.abc import Sequence

CHAIN = "GAMMAXDS_OUTPUT"
DEFAULT_PORT = 15001
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_TIMEOUT = 10.0
_MAX_JUMPS = 64  # bound for deleting duplicate jumps someone else may have added


class CaptureError(RuntimeError):
    """A capture rule could not be validated, applied or removed; the message says which and why."""


def validate_cidr(service_cidr: str) -> ipaddress.IPv4Network:
    """Parse the Service CIDR, refusing anything that would capture more than Services."""
    try:
        net = ipaddress.ip_network(service_cidr.strip(), strict=True)
    except ValueError as exc:
        raise CaptureError(
            f"invalid service CIDR {service_cidr!r}: {exc} (expected an IPv4 network such as 10.96.0.0/12)"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise CaptureError(
            f"invalid service CIDR {service_cidr!r}: only IPv4 is supported (iptables, not ip6tables)"
        )
    if net.overlaps(_LOOPBACK):
        raise CaptureError(
            f"invalid service CIDR {service_cidr!r}: it overlaps 127.0.0.0/8, which would capture "
            "the sidecar's own listener and admin traffic"
        )
    return net


def _validate_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CaptureError(f"invalid capture port {port!r}: expected 1..65535")
    return port


def rules(service_cidr: str, port: int = DEFAULT_PORT) -> list[list[str]]:
    """The iptables commands (full argv) that install capture in an empty `nat` table, in order."""
    net = validate_cidr(service_cidr)
    port = _validate_port(port)
    return [
        ["iptables", "-t", "nat", "-N", CHAIN],
        ["iptables", "-t", "nat", "-A", CHAIN, "-p", "tcp", "-d", str(net), "-j", "REDIRECT",
         "--to-ports", str(port)],
        ["iptables", "-t", "nat", "-A", "OUTPUT", "-j", CHAIN],
    ]


def removal_rules() -> list[list[str]]:
    """The iptables commands (full argv) that undo `rules`, in order."""
    return [
        ["iptables", "-t", "nat", "-D", "OUTPUT", "-j", CHAIN],
        ["iptables", "-t", "nat", "-F", CHAIN],
        ["iptables", "-t", "nat", "-X", CHAIN],
    ]


def render(service_cidr: str, port: int = DEFAULT_PORT, *, remove: bool = False) -> str:
    """What `gammaxds capture` prints: a POSIX shell script that applies (or removes) capture, rerunnable."""
    net = validate_cidr(service_cidr)
    q = shlex.join
    check_jump = q(["iptables", "-t", "nat", "-C", "OUTPUT", "-j", CHAIN])
    if remove:
        delete_jump, flush, delete_chain = map(q, removal_rules())
        return "\n".join([
            "#!/bin/sh",
            f"# gammaxds: remove transparent capture (the {CHAIN} chain of the nat table).",
            f"while {check_jump} 2>/dev/null; do {delete_jump}; done",
            f"if iptables -t nat -S {CHAIN} >/dev/null 2>&1; then {flush} && {delete_chain}; fi",
            "",
        ])
    create, redirect, jump = map(q, rules(service_cidr, port))
    return "\n".join([
        "#!/bin/sh",
        f"# gammaxds: send TCP for Services ({net}) to the sidecar on 127.0.0.1:{port} (REDIRECT).",
        "# Only the Service CIDR is captured: traffic to pod IPs (including Envoy's own) is left alone.",
        "set -e",
        f"{create} 2>/dev/null || iptables -t nat -F {CHAIN}",
        redirect,
        f"{check_jump} 2>/dev/null || {jump}",
        "",
    ])


def _iptables(args: Sequence[str], netns: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one iptables command (args after the program name), in `netns` when given."""
    prog = shutil.which("iptables")
    if prog is None:
        raise CaptureError("iptables not found on PATH (install the iptables package)")
    argv = [prog, "-w", "5", *args]
    if netns is not None:
        ip = shutil.which("ip")
        if ip is None:
            raise CaptureError("ip (iproute2) not found on PATH, needed to enter a network namespace")
        argv = [ip, "netns", "exec", netns, *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CaptureError(f"timed out after {_TIMEOUT}s: {shlex.join(argv)}") from None
    if check and done.returncode != 0:
        raise CaptureError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _chain_exists(netns: str | None) -> bool:
    return _iptables(["-t", "nat", "-S", CHAIN], netns, check=False).returncode == 0


def _jump_present(netns: str | None) -> bool:
    return _iptables(["-t", "nat", "-C", "OUTPUT", "-j", CHAIN], netns, check=False).returncode == 0


def apply(service_cidr: str, port: int = DEFAULT_PORT, *, netns: str | None = None) -> None:
    """Install capture in this network namespace (or `netns`); re-applying replaces, never duplicates."""
    create, redirect, _jump = rules(service_cidr, port)
    if _chain_exists(netns):
        _iptables(["-t", "nat", "-F", CHAIN], netns)
    else:
        _iptables(create[1:], netns)
    _iptables(redirect[1:], netns)
    if not _jump_present(netns):
        _iptables(["-t", "nat", "-A", "OUTPUT", "-j", CHAIN], netns)


def remove(service_cidr: str | None = None, port: int = DEFAULT_PORT, *, netns: str | None = None) -> None:
    """Undo `apply` completely (every jump, then the chain); a no-op when capture is not installed.

    The CIDR and port are not needed (removal is by chain name); when given they are still validated, so
    `capture --service-cidr X --remove` reports a bad X like `--apply` does.
    """
    if service_cidr is not None:
        validate_cidr(service_cidr)
    _validate_port(port)
    for _ in range(_MAX_JUMPS):
        if not _jump_present(netns):
            break
        _iptables(["-t", "nat", "-D", "OUTPUT", "-j", CHAIN], netns)
    else:
        raise CaptureError(f"more than {_MAX_JUMPS} jumps to {CHAIN} in OUTPUT; refusing to loop")
    if _chain_exists(netns):
        _iptables(["-t", "nat", "-F", CHAIN], netns)
        _iptables(["-t", "nat", "-X", CHAIN], netns)


def installed(*, netns: str | None = None) -> list[str]:
    """Our rules as `iptables -t nat -S` prints them (jumps to our chain, and the chain itself); for tests."""
    out = _iptables(["-t", "nat", "-S"], netns).stdout.splitlines()
    return [line for line in out if CHAIN in line.split()]
