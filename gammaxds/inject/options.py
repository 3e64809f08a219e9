"""The injection flags, shared by `gammaxds inject` (`--image`, ...) and `gammaxds serve`'s webhook
(`--inject-image`, ...), so both build the same InjectConfig from the same defaults.

Only argparse and constants here: `gammaxds.cli` imports this module to build its parser, and building the
parser must stay cheap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rewrite import InjectConfig

DEFAULT_IMAGE = "gammaxds:0.1.0"
DEFAULT_PROXY_IMAGE = "envoyproxy/envoy:v1.40.0"
DEFAULT_XDS_ADDRESS = "gammaxds.gammaxds-system.svc:18000"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


def add_inject_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Add the flags of what an injected pod gets; `prefix` (e.g. "inject-") keeps them apart from a
    command's own flags of the same name (serve's `--xds-address` is where it listens)."""
    group = parser.add_argument_group("what an injected pod gets")
    group.add_argument(
        f"--{prefix}image",
        default=DEFAULT_IMAGE,
        metavar="IMAGE",
        help=f"the gammaxds image of the init steps (capture, bootstrap) (default {DEFAULT_IMAGE})",
    )
    group.add_argument(
        f"--{prefix}proxy-image",
        default=DEFAULT_PROXY_IMAGE,
        metavar="IMAGE",
        help=f"the Envoy image of the sidecar (default {DEFAULT_PROXY_IMAGE})",
    )
    group.add_argument(
        f"--{prefix}xds-address",
        default=DEFAULT_XDS_ADDRESS,
        metavar="HOST:PORT",
        help=f"where sidecars reach the control plane (default {DEFAULT_XDS_ADDRESS})",
    )
    group.add_argument(
        f"--{prefix}service-cidr",
        action="append",
        metavar="CIDR",
        help=f"the cluster's Service CIDR, captured (default {DEFAULT_SERVICE_CIDR}); repeat for dual stack",
    )
    group.add_argument(
        f"--{prefix}inbound",
        action="store_true",
        help='also capture inbound traffic (per pod: annotation gammaxds.io/inbound-capture: "true"|"false")',
    )


def inject_config(args: argparse.Namespace, prefix: str = "") -> InjectConfig:
    """The InjectConfig of the flags `add_inject_arguments` added, validated (ConfigError names the flag)."""
    from .rewrite import InjectConfig

    dest = prefix.replace("-", "_")
    return InjectConfig(
        image=getattr(args, f"{dest}image"),
        proxy_image=getattr(args, f"{dest}proxy_image"),
        xds_address=getattr(args, f"{dest}xds_address"),
        service_cidrs=tuple(getattr(args, f"{dest}service_cidr") or (DEFAULT_SERVICE_CIDR,)),
        inbound=bool(getattr(args, f"{dest}inbound")),
    ).validate(flag_prefix=prefix)
