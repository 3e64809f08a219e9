"""Transparent capture: the iptables rules that send a pod's traffic through its sidecar.

In the pod's network namespace, the `nat` table gets chains of ours, each jumped to from a built-in chain:

- `GAMMAXDS_OUTPUT`, from `OUTPUT` (connections the pod opens):
  1. traffic of the proxy's own uid (`--proxy-uid`, default 1337: the sidecar's Envoy runs as that uid) is
     never captured (`-m owner --uid-owner UID -j RETURN`). Envoy reaches the control plane, endpoints and
     passthrough destinations at any address, cluster IPs included: in a cluster the control plane is a Service,
     so its address is inside the Service CIDR, and without this rule Envoy's own xDS connection would be sent
     back to Envoy.
  2. TCP whose destination is in the Service CIDR is `REDIRECT`ed to port 15001 (the kernel maps locally
     generated packets to 127.0.0.1 and keeps the original destination for `SO_ORIGINAL_DST`, which Envoy's
     `original_dst` listener filter reads). Nothing else is captured: traffic to pod IPs (Service backends)
     goes out untouched.
- `GAMMAXDS_INBOUND`, from `PREROUTING`, only with `--inbound` (connections arriving at the pod): TCP not on
  loopback and not to the sidecar's own ports (15000-15099: admin, readiness, the capture listeners) is
  `REDIRECT`ed to 15006, the sidecar's `virtualInbound` listener, which passes it to its original destination
  (the pod's address and port) and logs the real client address.

IPv6: the same chains are installed with `ip6tables` for each IPv6 Service CIDR given (`--service-cidr` may be
repeated: a dual-stack cluster has one of each family); with no IPv6 Service CIDR nothing of IPv6 is touched.

Everything lives in named chains so `apply` is idempotent (flush and refill our chains, add each jump only
when missing) and `remove` is complete (delete every jump, flush, delete the chains), in both families.
`validate_cidr` refuses a Service CIDR that overlaps loopback, which would capture Envoy's own listeners.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CHAIN = "GAMMAXDS_OUTPUT"
INBOUND_CHAIN = "GAMMAXDS_INBOUND"
DEFAULT_PORT = 15001
INBOUND_PORT = 15006
DEFAULT_PROXY_UID = 1337
# Ports of the sidecar itself (admin 15000, the capture listeners, readiness): never redirected inbound.
SIDECAR_PORTS = "15000:15099"
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_TIMEOUT = 10.0
_MAX_JUMPS = 64  # bound for deleting duplicate jumps someone else may have added
_JUMPS = ((CHAIN, "OUTPUT"), (INBOUND_CHAIN, "PREROUTING"))

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CaptureError(RuntimeError):
    """A capture rule could not be validated, applied or removed; the message says which and why."""


def validate_cidr(service_cidr: str) -> Network:
    """Parse one Service CIDR, refusing anything that would capture more than Services."""
    try:
        net = ipaddress.ip_network(service_cidr.strip(), strict=True)
    except ValueError as exc:
        raise CaptureError(
            f"invalid service CIDR {service_cidr!r}: {exc} (expected a network such as 10.96.0.0/12)"
        ) from None
    if any(net.overlaps(lo) for lo in _LOOPBACK if lo.version == net.version):
        raise CaptureError(
            f"invalid service CIDR {service_cidr!r}: it overlaps loopback, which would capture "
            "the sidecar's own listener and admin traffic"
        )
    return net


def _cidrs(service_cidr: str | Iterable[str]) -> list[Network]:
    given = [service_cidr] if isinstance(service_cidr, str) else list(service_cidr)
    nets = [validate_cidr(c) for c in given]
    if not any(net.version == 4 for net in nets):
        raise CaptureError("a service CIDR of IPv4 is needed (IPv6 ones are added beside it, for dual stack)")
    return nets


def _validate_port(port: int, what: str = "capture port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CaptureError(f"invalid {what} {port!r}: expected 1..65535")
    return port


def _validate_uid(uid: int | None) -> int | None:
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid < 2**32):
        raise CaptureError(f"invalid proxy uid {uid!r}: expected 0..4294967295")
    return uid


@dataclass(frozen=True)
class RuleSet:
    """The complete rule set of one address family: each of our chains with its rules (iptables arguments
    after `-A CHAIN`), in order. Chains without rules are not installed."""

    program: str  # iptables or ip6tables
    chains: dict[str, list[list[str]]]

    def commands(self) -> list[list[str]]:
        """Full argv, in order, that install this set in an empty `nat` table."""
        out: list[list[str]] = []
        for chain, builtin in _JUMPS:
            if chain not in self.chains:
                continue
            out.append([self.program, "-t", "nat", "-N", chain])
            out += [[self.program, "-t", "nat", "-A", chain, *rule] for rule in self.chains[chain]]
            out.append([self.program, "-t", "nat", "-A", builtin, "-j", chain])
        return out


def rule_sets(
    service_cidr: str | Iterable[str],
    port: int = DEFAULT_PORT,
    *,
    proxy_uid: int | None = DEFAULT_PROXY_UID,
    inbound: bool = False,
    inbound_port: int = INBOUND_PORT,
) -> list[RuleSet]:
    """The rule set of each address family that has a Service CIDR (IPv4 first). `proxy_uid=None` leaves the
    sidecar's own traffic capturable (only for showing what the exclusion prevents)."""
    nets = _cidrs(service_cidr)
    port = _validate_port(port)
    inbound_port = _validate_port(inbound_port, "inbound port")
    uid = _validate_uid(proxy_uid)
    out = []
    for version, program in ((4, "iptables"), (6, "ip6tables")):
        family = [net for net in nets if net.version == version]
        if not family:
            continue
        outbound: list[list[str]] = []
        if uid is not None:
            outbound.append(["-m", "owner", "--uid-owner", str(uid), "-j", "RETURN"])
        outbound += [
            ["-p", "tcp", "-d", str(net), "-j", "REDIRECT", "--to-ports", str(port)] for net in family
        ]
        chains = {CHAIN: outbound}
        if inbound:
            chains[INBOUND_CHAIN] = [
                ["-i", "lo", "-j", "RETURN"],
                ["-p", "tcp", "--dport", SIDECAR_PORTS, "-j", "RETURN"],
                ["-p", "tcp", "-j", "REDIRECT", "--to-ports", str(inbound_port)],
            ]
        out.append(RuleSet(program, chains))
    return out


def rules(
    service_cidr: str | Iterable[str],
    port: int = DEFAULT_PORT,
    *,
    proxy_uid: int | None = DEFAULT_PROXY_UID,
    inbound: bool = False,
    inbound_port: int = INBOUND_PORT,
) -> list[list[str]]:
    """Every iptables/ip6tables command (full argv) that installs capture in an empty `nat` table, in order."""
    sets = rule_sets(service_cidr, port, proxy_uid=proxy_uid, inbound=inbound, inbound_port=inbound_port)
    return [cmd for rs in sets for cmd in rs.commands()]


def removal_rules(program: str = "iptables") -> list[list[str]]:
    """The commands (full argv) that undo `rules` for one family, in order (one jump of each chain)."""
    out = []
    for chain, builtin in _JUMPS:
        out += [
            [program, "-t", "nat", "-D", builtin, "-j", chain],
            [program, "-t", "nat", "-F", chain],
            [program, "-t", "nat", "-X", chain],
        ]
    return out


def render(
    service_cidr: str | Iterable[str],
    port: int = DEFAULT_PORT,
    *,
    remove: bool = False,
    proxy_uid: int | None = DEFAULT_PROXY_UID,
    inbound: bool = False,
) -> str:
    """What `gammaxds capture` prints: a POSIX shell script that applies (or removes) capture, rerunnable."""
    sets = rule_sets(service_cidr, port, proxy_uid=proxy_uid, inbound=inbound)
    q = shlex.join
    if remove:
        lines = [
            "#!/bin/sh",
            f"# gammaxds: remove transparent capture (the {CHAIN} and {INBOUND_CHAIN} chains).",
        ]
        for rs in sets:
            for chain, builtin in _JUMPS:
                check_jump = q([rs.program, "-t", "nat", "-C", builtin, "-j", chain])
                delete_jump = q([rs.program, "-t", "nat", "-D", builtin, "-j", chain])
                flush, delete_chain = (
                    q([rs.program, "-t", "nat", "-F", chain]),
                    q([rs.program, "-t", "nat", "-X", chain]),
                )
                lines.append(f"while {check_jump} 2>/dev/null; do {delete_jump}; done")
                lines.append(
                    f"if {rs.program} -t nat -S {chain} >/dev/null 2>&1; then {flush} && {delete_chain}; fi"
                )
        return "\n".join([*lines, ""])
    nets = ", ".join(str(n) for n in _cidrs(service_cidr))
    lines = [
        "#!/bin/sh",
        f"# gammaxds: send TCP for Services ({nets}) to the sidecar on port {port} (REDIRECT).",
        "# Only the Service CIDR is captured: traffic to pod IPs is left alone.",
    ]
    if proxy_uid is not None:
        lines.append(f"# Traffic of uid {proxy_uid} (the sidecar's Envoy) is never captured.")
    if inbound:
        lines.append(
            f"# Inbound TCP (not loopback, not ports {SIDECAR_PORTS}) goes to the sidecar on {INBOUND_PORT}."
        )
    lines.append("set -e")
    for rs in sets:
        for chain, builtin in _JUMPS:
            if chain not in rs.chains:
                continue
            lines.append(
                f"{q([rs.program, '-t', 'nat', '-N', chain])} 2>/dev/null || {rs.program} -t nat -F {chain}"
            )
            lines += [q([rs.program, "-t", "nat", "-A", chain, *rule]) for rule in rs.chains[chain]]
            check_jump = q([rs.program, "-t", "nat", "-C", builtin, "-j", chain])
            lines.append(
                f"{check_jump} 2>/dev/null || {q([rs.program, '-t', 'nat', '-A', builtin, '-j', chain])}"
            )
        if INBOUND_CHAIN not in rs.chains:  # capture without --inbound: none left from an earlier run
            check = q([rs.program, "-t", "nat", "-C", "PREROUTING", "-j", INBOUND_CHAIN])
            lines.append(
                f"while {check} 2>/dev/null; do {rs.program} -t nat -D PREROUTING -j {INBOUND_CHAIN}; done"
            )
            lines.append(
                f"if {rs.program} -t nat -S {INBOUND_CHAIN} >/dev/null 2>&1; then "
                f"{rs.program} -t nat -F {INBOUND_CHAIN} && {rs.program} -t nat -X {INBOUND_CHAIN}; fi"
            )
    return "\n".join([*lines, ""])


def _iptables(
    args: Sequence[str], netns: str | None, check: bool = True, program: str = "iptables"
) -> subprocess.CompletedProcess[str]:
    """Run one iptables (or ip6tables) command (args after the program name), in `netns` when given."""
    prog = shutil.which(program)
    if prog is None:
        raise CaptureError(f"{program} not found on PATH (install the iptables package)")
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


def _chain_exists(chain: str, netns: str | None, program: str) -> bool:
    return _iptables(["-t", "nat", "-S", chain], netns, check=False, program=program).returncode == 0


def _jump_present(chain: str, builtin: str, netns: str | None, program: str) -> bool:
    return (
        _iptables(["-t", "nat", "-C", builtin, "-j", chain], netns, check=False, program=program).returncode
        == 0
    )


def _delete_chain(chain: str, builtin: str, netns: str | None, program: str) -> None:
    for _ in range(_MAX_JUMPS):
        if not _jump_present(chain, builtin, netns, program):
            break
        _iptables(["-t", "nat", "-D", builtin, "-j", chain], netns, program=program)
    else:
        raise CaptureError(f"more than {_MAX_JUMPS} jumps to {chain} in {builtin}; refusing to loop")
    if _chain_exists(chain, netns, program):
        _iptables(["-t", "nat", "-F", chain], netns, program=program)
        _iptables(["-t", "nat", "-X", chain], netns, program=program)


def apply(
    service_cidr: str | Iterable[str],
    port: int = DEFAULT_PORT,
    *,
    netns: str | None = None,
    proxy_uid: int | None = DEFAULT_PROXY_UID,
    inbound: bool = False,
) -> None:
    """Install capture in this network namespace (or `netns`); re-applying replaces, never duplicates."""
    for rs in rule_sets(service_cidr, port, proxy_uid=proxy_uid, inbound=inbound):
        for chain, builtin in _JUMPS:
            if chain not in rs.chains:
                _delete_chain(chain, builtin, netns, rs.program)  # e.g. --inbound dropped since last time
                continue
            if _chain_exists(chain, netns, rs.program):
                _iptables(["-t", "nat", "-F", chain], netns, program=rs.program)
            else:
                _iptables(["-t", "nat", "-N", chain], netns, program=rs.program)
            for rule in rs.chains[chain]:
                _iptables(["-t", "nat", "-A", chain, *rule], netns, program=rs.program)
            if not _jump_present(chain, builtin, netns, rs.program):
                _iptables(["-t", "nat", "-A", builtin, "-j", chain], netns, program=rs.program)


def remove(
    service_cidr: str | Iterable[str] | None = None, port: int = DEFAULT_PORT, *, netns: str | None = None
) -> None:
    """Undo `apply` completely (every jump, then the chains, in both families); a no-op where nothing is
    installed. The CIDR and port are not needed (removal is by chain name); when given they are still
    validated, so `capture --service-cidr X --remove` reports a bad X like `--apply` does. IPv6 rules are
    removed wherever ip6tables exists, whatever CIDRs are given."""
    if service_cidr is not None:
        _cidrs(service_cidr)
    _validate_port(port)
    programs = ["iptables", *(["ip6tables"] if shutil.which("ip6tables") else [])]
    for program in programs:
        for chain, builtin in _JUMPS:
            _delete_chain(chain, builtin, netns, program)


def installed(*, netns: str | None = None, program: str = "iptables") -> list[str]:
    """Our rules as `iptables -t nat -S` prints them (jumps to our chains, and the chains); for tests."""
    out = _iptables(["-t", "nat", "-S"], netns, program=program).stdout.splitlines()
    ours = {CHAIN, INBOUND_CHAIN}
    return [line for line in out if ours & set(line.split())]
