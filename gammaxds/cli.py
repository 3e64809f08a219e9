"""The `gammaxds` command (SPEC.md, "The command line"): serve, translate, bootstrap, capture, status, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from .model.status import DEFAULT_CONTROLLER
from .translate.view import CAPTURES, DEFAULT_OUTBOUND

DEFAULT_XDS = "127.0.0.1:18000"
DEFAULT_ADMIN = "127.0.0.1:9901"


def cmd_translate(args: argparse.Namespace) -> int:
    from .model import load_paths
    from .translate import Translator
    from .translate.report import status_report, view_report

    loaded = load_paths(args.paths)
    translation = Translator().load(loaded.world())
    namespaces = [args.namespace] if args.namespace else translation.world.namespaces
    doc = {
        "views": [
            {"namespace": ns, "capture": args.capture, **view_report(translation, ns, args.capture)}
            for ns in namespaces
        ],
        "status": status_report(translation, loaded, args.controller_name),
    }
    if args.output == "json":
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        yaml.safe_dump(doc, sys.stdout, sort_keys=False, width=120)
    for err in loaded.errors:
        print(f"error: {err}", file=sys.stderr)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    not_accepted = not translation.statuses.all_accepted
    if not_accepted:
        print("error: some routes are not accepted (see status)", file=sys.stderr)
    return 1 if loaded.errors or not_accepted else 0


def cmd_capture(args: argparse.Namespace) -> int:
    from . import capture

    try:
        if args.apply:
            capture.apply(args.service_cidr, args.port)
        elif args.remove:
            capture.remove(args.service_cidr, args.port)
        else:
            print(capture.render(args.service_cidr, args.port), end="")
    except capture.CaptureError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gammaxds", description="An xDS control plane for Envoy sidecars (GAMMA)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve ADS to Envoy sidecars")
    serve.add_argument(
        "--manifests", action="append", default=[], metavar="PATH", help="file or directory (repeatable)"
    )
    kube = serve.add_mutually_exclusive_group()
    kube.add_argument("--kubeconfig", metavar="FILE", help="watch the Kubernetes cluster of this kubeconfig")
    kube.add_argument("--in-cluster", action="store_true", help="watch the cluster this pod runs in")
    serve.add_argument("--xds-address", default=DEFAULT_XDS, metavar="HOST:PORT|unix:PATH")
    serve.add_argument("--admin-address", default=DEFAULT_ADMIN, metavar="HOST:PORT")
    serve.add_argument("--controller-name", default=DEFAULT_CONTROLLER)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    translate = sub.add_parser("translate", help="print, offline, what a sidecar would receive")
    translate.add_argument("paths", nargs="+", metavar="PATH")
    translate.add_argument(
        "--namespace", metavar="NS", help="the client's namespace (default: every namespace)"
    )
    translate.add_argument("--capture", choices=CAPTURES, default="transparent")
    translate.add_argument("--output", choices=["yaml", "json"], default="yaml")
    translate.add_argument("--controller-name", default=DEFAULT_CONTROLLER)
    translate.set_defaults(func=cmd_translate)

    boot = sub.add_parser("bootstrap", help="print an Envoy bootstrap for one sidecar")
    boot.add_argument("--node-id", required=True)
    boot.add_argument("--namespace", required=True)
    boot.add_argument("--xds-address", default=DEFAULT_XDS, metavar="HOST:PORT|unix:PATH")
    boot.add_argument("--capture", choices=CAPTURES, default="transparent")
    boot.add_argument("--outbound-address", default=DEFAULT_OUTBOUND, metavar="HOST:PORT")
    boot.add_argument("--admin-address", default="127.0.0.1:15000", metavar="HOST:PORT")
    boot.add_argument("--sotw", action="store_true", help="state-of-the-world ADS instead of delta")

    cap = sub.add_parser("capture", help="print or apply the iptables rules of transparent capture")
    cap.add_argument("--service-cidr", required=True, metavar="CIDR")
    cap.add_argument("--port", type=int, default=15001)
    mode = cap.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="apply in the current network namespace")
    mode.add_argument("--remove", action="store_true", help="remove rules applied before")
    cap.set_defaults(func=cmd_capture)

    status = sub.add_parser("status", help="one line per connected sidecar")
    status.add_argument("--admin-address", default=DEFAULT_ADMIN, metavar="HOST:PORT")

    demo = sub.add_parser("demo", help="run the demo mesh on this machine and walk through it")
    demo.add_argument("--keep", action="store_true", help="leave the mesh running until Ctrl-C")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        from . import commands

        func = getattr(commands, f"cmd_{args.command}")
    raise SystemExit(func(args))
