"""Capture rules as text, and the apply/remove logic against a fake iptables (no root needed)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from gammaxds import capture
from gammaxds.capture import CHAIN, CaptureError


def test_rules_redirect_only_the_service_cidr_to_the_sidecar() -> None:
    assert capture.rules("10.96.0.0/12") == [
        ["iptables", "-t", "nat", "-N", CHAIN],
        ["iptables", "-t", "nat", "-A", CHAIN, "-p", "tcp", "-d", "10.96.0.0/12", "-j", "REDIRECT",
         "--to-ports", "15001"],
        ["iptables", "-t", "nat", "-A", "OUTPUT", "-j", CHAIN],
    ]


def test_rules_take_the_port_and_normalise_the_cidr() -> None:
    redirect = capture.rules(" 10.96.0.0/16 ", port=15006)[1]
    assert redirect[redirect.index("-d") + 1] == "10.96.0.0/16"
    assert redirect[-2:] == ["--to-ports", "15006"]


def test_removal_undoes_rules_in_reverse() -> None:
    assert capture.removal_rules() == [
        ["iptables", "-t", "nat", "-D", "OUTPUT", "-j", CHAIN],
        ["iptables", "-t", "nat", "-F", CHAIN],
        ["iptables", "-t", "nat", "-X", CHAIN],
    ]


def test_render_is_a_rerunnable_shell_script() -> None:
    script = capture.render("10.96.0.0/16")
    assert script.startswith("#!/bin/sh\n")
    assert "set -e" in script
    assert f"iptables -t nat -N {CHAIN} 2>/dev/null || iptables -t nat -F {CHAIN}" in script
    assert f"iptables -t nat -A {CHAIN} -p tcp -d 10.96.0.0/16 -j REDIRECT --to-ports 15001" in script
    jump = f"iptables -t nat -C OUTPUT -j {CHAIN} 2>/dev/null || iptables -t nat -A OUTPUT -j {CHAIN}"
    assert jump in script
    assert script == capture.render("10.96.0.0/16")  # deterministic


def test_render_remove() -> None:
    script = capture.render("10.96.0.0/16", remove=True)
    assert f"while iptables -t nat -C OUTPUT -j {CHAIN} 2>/dev/null; do" in script
    assert f"iptables -t nat -X {CHAIN}" in script
    assert "REDIRECT" not in script


@pytest.mark.parametrize(
    ("cidr", "reason"),
    [
        ("junk", "does not appear to be"),
        ("10.96.0.1/16", "host bits set"),
        ("10.96.0.0/33", "10.96.0.0/33"),
        ("fd00::/108", "only IPv4"),
        ("0.0.0.0/0", "overlaps 127.0.0.0/8"),
        ("127.0.0.0/24", "overlaps 127.0.0.0/8"),
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
        self, args: Sequence[str], netns: str | None, check: bool = True
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


@pytest.fixture
def nat(monkeypatch: pytest.MonkeyPatch) -> FakeNat:
    fake = FakeNat()
    monkeypatch.setattr(capture, "_iptables", fake)
    return fake


def test_apply_twice_leaves_one_set(nat: FakeNat) -> None:
    capture.apply("10.96.0.0/16", netns="pod")
    capture.apply("10.96.0.0/16", netns="pod")
    assert nat.chains["OUTPUT"] == [["-j", CHAIN]]
    assert nat.chains[CHAIN] == [["-p", "tcp", "-d", "10.96.0.0/16", "-j", "REDIRECT", "--to-ports", "15001"]]
    assert {ns for _, ns in nat.calls} == {"pod"}


def test_apply_with_another_cidr_replaces(nat: FakeNat) -> None:
    capture.apply("10.96.0.0/16")
    capture.apply("10.100.0.0/16", port=15006)
    redirect = ["-p", "tcp", "-d", "10.100.0.0/16", "-j", "REDIRECT", "--to-ports", "15006"]
    assert nat.chains[CHAIN] == [redirect]
    assert nat.chains["OUTPUT"] == [["-j", CHAIN]]


def test_remove_undoes_everything_even_duplicated_jumps(nat: FakeNat) -> None:
    nat.chains["OUTPUT"].append(["-j", "KEEP_ME"])
    capture.apply("10.96.0.0/16")
    nat.chains["OUTPUT"].append(["-j", CHAIN])  # someone ran the rules by hand too
    capture.remove()
    assert CHAIN not in nat.chains
    assert nat.chains["OUTPUT"] == [["-j", "KEEP_ME"]]
    capture.remove()  # no-op when nothing is installed
    assert CHAIN not in nat.chains


def test_remove_validates_a_given_cidr(nat: FakeNat) -> None:
    with pytest.raises(CaptureError, match="invalid service CIDR"):
        capture.remove("nope")
    assert nat.calls == []


def test_installed_lists_only_our_rules(nat: FakeNat) -> None:
    nat.chains["OUTPUT"].append(["-j", "OTHER"])
    capture.apply("10.96.0.0/16")
    assert capture.installed() == [
        f"-N {CHAIN}",
        f"-A OUTPUT -j {CHAIN}",
        f"-A {CHAIN} -p tcp -d 10.96.0.0/16 -j REDIRECT --to-ports 15001",
    ]
