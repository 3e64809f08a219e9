"""Capture rules as text, and the apply/remove logic against a fake iptables (no root needed)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from gammaxds import capture
from gammaxds.capture import CHAIN, INBOUND_CHAIN, CaptureError

OWNER = ["-m", "owner", "--uid-owner", "1337", "-j", "RETURN"]


def redirect(cidr: str, port: int = 15001) -> list[str]:
    return ["-p", "tcp", "-d", cidr, "-j", "REDIRECT", "--to-ports", str(port)]


def test_rules_exclude_the_proxy_uid_then_redirect_only_the_service_cidr() -> None:
    assert capture.rules("10.96.0.0/12") == [
        ["iptables", "-t", "nat", "-N", CHAIN],
        ["iptables", "-t", "nat", "-A", CHAIN, *OWNER],
        ["iptables", "-t", "nat", "-A", CHAIN, *redirect("10.96.0.0/12")],
        ["iptables", "-t", "nat", "-A", "OUTPUT", "-j", CHAIN],
    ]


def test_rules_take_the_port_the_uid_and_normalise_the_cidr() -> None:
    rules = capture.rules(" 10.96.0.0/16 ", port=15009, proxy_uid=2000)
    assert rules[1][-4:] == ["--uid-owner", "2000", "-j", "RETURN"]
    assert rules[2] == ["iptables", "-t", "nat", "-A", CHAIN, *redirect("10.96.0.0/16", 15009)]
    # Without the exclusion (for showing what it prevents) only the redirect is left.
    assert capture.rules("10.96.0.0/16", proxy_uid=None)[1] == [
        "iptables",
        "-t",
        "nat",
        "-A",
        CHAIN,
        *redirect("10.96.0.0/16"),
    ]


def test_inbound_capture_redirects_arriving_tcp_but_not_loopback_or_the_sidecar_ports() -> None:
    rules = capture.rules("10.96.0.0/16", inbound=True)
    assert rules[4:] == [
        ["iptables", "-t", "nat", "-N", INBOUND_CHAIN],
        ["iptables", "-t", "nat", "-A", INBOUND_CHAIN, "-i", "lo", "-j", "RETURN"],
        ["iptables", "-t", "nat", "-A", INBOUND_CHAIN, "-p", "tcp", "--dport", "15000:15099", "-j", "RETURN"],
        ["iptables", "-t", "nat", "-A", INBOUND_CHAIN, "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"],
        ["iptables", "-t", "nat", "-A", "PREROUTING", "-j", INBOUND_CHAIN],
    ]


def test_an_ipv6_service_cidr_adds_the_same_rules_for_ip6tables() -> None:
    rules = capture.rules(["10.96.0.0/16", "fd00:10:96::/112"], inbound=True)
    v4 = [r for r in rules if r[0] == "iptables"]
    v6 = [r for r in rules if r[0] == "ip6tables"]
    as_v6 = {"iptables": "ip6tables", "10.96.0.0/16": "fd00:10:96::/112"}
    assert v6 == [[as_v6.get(arg, arg) for arg in r] for r in v4]
    assert rules == v4 + v6  # IPv4 first
    assert not any(r[0] == "ip6tables" for r in capture.rules("10.96.0.0/16", inbound=True))


def test_an_ipv4_service_cidr_is_required() -> None:
    with pytest.raises(CaptureError, match="IPv4 is needed"):
        capture.rules("fd00:10:96::/112")


def test_removal_undoes_rules_in_reverse() -> None:
    assert capture.removal_rules() == [
        ["iptables", "-t", "nat", "-D", "OUTPUT", "-j", CHAIN],
        ["iptables", "-t", "nat", "-F", CHAIN],
        ["iptables", "-t", "nat", "-X", CHAIN],
        ["iptables", "-t", "nat", "-D", "PREROUTING", "-j", INBOUND_CHAIN],
        ["iptables", "-t", "nat", "-F", INBOUND_CHAIN],
        ["iptables", "-t", "nat", "-X", INBOUND_CHAIN],
    ]


def test_render_is_a_rerunnable_shell_script() -> None:
    script = capture.render("10.96.0.0/16")
    assert script.startswith("#!/bin/sh\n")
    assert "set -e" in script
    assert f"iptables -t nat -N {CHAIN} 2>/dev/null || iptables -t nat -F {CHAIN}" in script
    assert f"iptables -t nat -A {CHAIN} -m owner --uid-owner 1337 -j RETURN" in script
    assert f"iptables -t nat -A {CHAIN} -p tcp -d 10.96.0.0/16 -j REDIRECT --to-ports 15001" in script
    jump = f"iptables -t nat -C OUTPUT -j {CHAIN} 2>/dev/null || iptables -t nat -A OUTPUT -j {CHAIN}"
    assert jump in script
    assert f"iptables -t nat -X {INBOUND_CHAIN}" in script  # an earlier --inbound is undone
    assert script == capture.render("10.96.0.0/16")  # deterministic


def test_render_remove() -> None:
    script = capture.render("10.96.0.0/16", remove=True)
    assert f"while iptables -t nat -C OUTPUT -j {CHAIN} 2>/dev/null; do" in script
    assert f"iptables -t nat -X {CHAIN}" in script
    assert f"iptables -t nat -X {INBOUND_CHAIN}" in script
    assert "REDIRECT" not in script


@pytest.mark.parametrize(
    ("cidr", "reason"),
    [
        ("junk", "does not appear to be"),
        ("10.96.0.1/16", "host bits set"),
        ("10.96.0.0/33", "10.96.0.0/33"),
        ("0.0.0.0/0", "overlaps loopback"),
        ("127.0.0.0/24", "overlaps loopback"),
        ("::/0", "overlaps loopback"),
    ],
)
def test_bad_cidr_is_a_clear_error(cidr: str, reason: str) -> None:
    with pytest.raises(CaptureError, match="invalid service CIDR") as err:
        capture.rules(cidr)
    assert reason in str(err.value)
    with pytest.raises(CaptureError):
        capture.render(cidr)
    with pytest.raises(CaptureError):
        capture.apply(cidr)


@pytest.mark.parametrize("port", [0, 65536, -1, True])
def test_bad_port_is_a_clear_error(port: int) -> None:
    with pytest.raises(CaptureError, match="invalid capture port"):
        capture.rules("10.96.0.0/16", port=port)


BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


class FakeNat:
    """Just enough of `iptables -t nat` (chains -N/-F/-X, rules -A/-C/-D, -S) to check apply/remove."""

    def __init__(self) -> None:
        self.chains: dict[str, list[list[str]]] = {c: [] for c in BUILTIN}
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(
        self, args: Sequence[str], netns: str | None, check: bool = True, program: str = "iptables"
    ) -> subprocess.CompletedProcess[str]:
        args = list(args)
        self.calls.append((args, netns))
        assert args[:2] == ["-t", "nat"]
        op, chain, rule = args[2], args[3] if len(args) > 3 else None, args[4:]
        rc, out = 0, ""
        if op == "-S":
            if chain is None:
                out = "\n".join(
                    [f"-N {c}" for c in self.chains if c not in BUILTIN]
                    + [" ".join(["-A", c, *r]) for c, rs in self.chains.items() for r in rs]
                )
            rc = 0 if chain is None or chain in self.chains else 1
        elif chain not in self.chains and op != "-N":
            rc = 1
        elif op == "-N":
            rc = 1 if chain in self.chains else 0
            self.chains.setdefault(chain, [])
        elif op == "-F":
            self.chains[chain] = []
        elif op == "-X":
            referenced = any(["-j", chain] == r[-2:] for rs in self.chains.values() for r in rs)
            rc = 1 if self.chains[chain] or referenced else 0
            if rc == 0:
                del self.chains[chain]
        elif op == "-A":
            self.chains[chain].append(rule)
        elif op == "-C":
            rc = 0 if rule in self.chains[chain] else 1
        elif op == "-D":
            if rule in self.chains[chain]:
                self.chains[chain].remove(rule)
            else:
                rc = 1
        if check and rc:
            raise CaptureError(f"fake iptables {args} failed")
        return subprocess.CompletedProcess(args, rc, out, "")


class FakeNats(FakeNat):
    """The IPv4 table (this object) and the IPv6 one (`v6`), as `_iptables` reaches them by program."""

    def __init__(self) -> None:
        super().__init__()
        self.v6 = FakeNat()

    def __call__(
        self, args: Sequence[str], netns: str | None, check: bool = True, program: str = "iptables"
    ) -> subprocess.CompletedProcess[str]:
        if program == "ip6tables":
            return self.v6(args, netns, check)
        return super().__call__(args, netns, check)


@pytest.fixture
def nat(monkeypatch: pytest.MonkeyPatch) -> FakeNats:
    fake = FakeNats()
    monkeypatch.setattr(capture, "_iptables", fake)
    return fake


def test_apply_twice_leaves_one_set(nat: FakeNats) -> None:
    capture.apply("10.96.0.0/16", netns="pod")
    capture.apply("10.96.0.0/16", netns="pod")
    assert nat.chains["OUTPUT"] == [["-j", CHAIN]]
    assert nat.chains[CHAIN] == [OWNER, redirect("10.96.0.0/16")]
    assert {ns for _, ns in nat.calls} == {"pod"}


def test_apply_with_another_cidr_replaces(nat: FakeNats) -> None:
    capture.apply("10.96.0.0/16")
    capture.apply("10.100.0.0/16", port=15009)
    assert nat.chains[CHAIN] == [OWNER, redirect("10.100.0.0/16", 15009)]
    assert nat.chains["OUTPUT"] == [["-j", CHAIN]]


def test_inbound_is_added_and_dropped_by_re_applying(nat: FakeNats) -> None:
    capture.apply("10.96.0.0/16", inbound=True)
    assert nat.chains["PREROUTING"] == [["-j", INBOUND_CHAIN]]
    assert nat.chains[INBOUND_CHAIN][-1] == ["-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"]
    capture.apply("10.96.0.0/16", inbound=True)
    assert nat.chains["PREROUTING"] == [["-j", INBOUND_CHAIN]] and len(nat.chains[INBOUND_CHAIN]) == 3
    capture.apply("10.96.0.0/16")
    assert nat.chains["PREROUTING"] == [] and INBOUND_CHAIN not in nat.chains
    assert nat.chains[CHAIN] == [OWNER, redirect("10.96.0.0/16")]


def test_dual_stack_apply_and_remove_cover_both_families(nat: FakeNats) -> None:
    capture.apply(["10.96.0.0/16", "fd00:10:96::/112"], inbound=True)
    assert nat.v6.chains[CHAIN] == [OWNER, redirect("fd00:10:96::/112")]
    assert nat.v6.chains["PREROUTING"] == [["-j", INBOUND_CHAIN]]
    capture.remove()
    for table in (nat, nat.v6):
        assert CHAIN not in table.chains and INBOUND_CHAIN not in table.chains
        assert table.chains["OUTPUT"] == table.chains["PREROUTING"] == []


def test_remove_undoes_everything_even_duplicated_jumps(nat: FakeNats) -> None:
    nat.chains["OUTPUT"].append(["-j", "KEEP_ME"])
    capture.apply("10.96.0.0/16")
    nat.chains["OUTPUT"].append(["-j", CHAIN])  # someone ran the rules by hand too
    capture.remove()
    assert CHAIN not in nat.chains
    assert nat.chains["OUTPUT"] == [["-j", "KEEP_ME"]]
    capture.remove()  # no-op when nothing is installed
    assert CHAIN not in nat.chains


def test_remove_validates_a_given_cidr(nat: FakeNats) -> None:
    with pytest.raises(CaptureError, match="invalid service CIDR"):
        capture.remove("nope")
    assert nat.calls == []


def test_installed_lists_only_our_rules(nat: FakeNats) -> None:
    nat.chains["OUTPUT"].append(["-j", "OTHER"])
    capture.apply("10.96.0.0/16")
    assert capture.installed() == [
        f"-N {CHAIN}",
        f"-A OUTPUT -j {CHAIN}",
        f"-A {CHAIN} -m owner --uid-owner 1337 -j RETURN",
        f"-A {CHAIN} -p tcp -d 10.96.0.0/16 -j REDIRECT --to-ports 15001",
    ]
