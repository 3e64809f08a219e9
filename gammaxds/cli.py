"""The `gammaxds` command (README, "Command line"): serve, translate, bootstrap, capture, inject, status,
demo, completion."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

import yaml

from .inject.options import add_inject_arguments
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
            {
                "namespace": ns,
                "capture": args.capture,
                **view_report(translation, ns, args.capture, access_log=args.access_log == "on"),
            }
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
        options = {"proxy_uid": args.proxy_uid, "inbound": args.inbound}
        if args.apply:
            capture.apply(args.service_cidr, args.port, **options)
        elif args.remove:
            capture.remove(args.service_cidr, args.port)
        else:
            print(capture.render(args.service_cidr, args.port, **options), end="")
    except capture.CaptureError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_inject(args: argparse.Namespace) -> int:
    from .inject.command import run_inject  # not through commands: rewriting YAML needs no server modules

    return run_inject(args)


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import run_completion  # shtab is imported only here

    return run_completion(args)


def cmd_describe(args: argparse.Namespace) -> int:
    from .describe.command import run_describe

    return run_describe(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gammaxds")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gammaxds", description="An xDS control plane for Envoy sidecars (GAMMA)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve ADS to Envoy sidecars")
    serve.add_argument(
        "--manifests", action="append", default=[], metavar="PATH", help="file or directory (repeatable)"
    )
    kube = serve.add_mutually_exclusive_group()
    kube.add_argument("--kubeconfig", metavar="FILE", help="watch the Kubernetes cluster of this kubeconfig")
    kube.add_argument("--in-cluster", action="store_true", help="watch the cluster this pod runs in")
    serve.add_argument(
        "--xds-address",
        default=DEFAULT_XDS,
        metavar="HOST:PORT|unix:PATH",
        help="where sidecars connect for ADS (default: %(default)s)",
    )
    serve.add_argument(
        "--admin-address",
        default=DEFAULT_ADMIN,
        metavar="HOST:PORT",
        help="/healthz, /readyz, /metrics, /debug/... (default: %(default)s)",
    )
    serve.add_argument(
        "--controller-name",
        default=DEFAULT_CONTROLLER,
        help="the controllerName of the route status entries written (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(default: %(default)s)",
    )
    serve.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object per line with each event's fields (default: %(default)s)",
    )
    hook = serve.add_argument_group("the sidecar-injection webhook (off unless --webhook-address is given)")
    hook.add_argument(
        "--webhook-address", metavar="HOST:PORT", help="serve the mutating admission webhook (HTTPS) here"
    )
    hook.add_argument(
        "--webhook-cert-dir",
        metavar="DIR",
        help="its certificate: DIR/tls.crt and DIR/tls.key (a mounted Secret); default: generated at start",
    )
    hook.add_argument(
        "--webhook-config",
        default="gammaxds",
        metavar="NAME",
        help="the MutatingWebhookConfiguration whose caBundle a generated certificate's CA goes into",
    )
    hook.add_argument(
        "--webhook-service",
        metavar="NAME.NAMESPACE",
        help="the webhook's Service, named in a generated certificate (default gammaxds.<own namespace>)",
    )
    add_inject_arguments(serve, prefix="inject-")

    translate = sub.add_parser("translate", help="print, offline, what a sidecar would receive")
    translate.add_argument("paths", nargs="+", metavar="PATH")
    translate.add_argument(
        "--namespace", metavar="NS", help="the client's namespace (default: every namespace)"
    )
    translate.add_argument(
        "--capture",
        choices=CAPTURES,
        default="transparent",
        help="the sidecar's capture mode (default: %(default)s)",
    )
    translate.add_argument(
        "--access-log",
        choices=["on", "off"],
        default="on",
        help="the sidecar's access-log choice, as `gammaxds bootstrap --access-log` (default: %(default)s)",
    )
    translate.add_argument(
        "--output", choices=["yaml", "json"], default="yaml", help="(default: %(default)s)"
    )
    translate.add_argument(
        "--controller-name",
        default=DEFAULT_CONTROLLER,
        help="the controllerName of the status shown (default: %(default)s)",
    )
    translate.set_defaults(func=cmd_translate)

    boot = sub.add_parser("bootstrap", help="print an Envoy bootstrap for one sidecar")
    boot.add_argument("--node-id", required=True, help="the sidecar's node id, unique per sidecar")
    boot.add_argument("--namespace", required=True, help="the client's namespace: it selects what it sees")
    boot.add_argument(
        "--xds-address",
        default=DEFAULT_XDS,
        metavar="HOST:PORT|unix:PATH",
        help="the control plane; HOST may be a DNS name (default: %(default)s)",
    )
    boot.add_argument("--capture", choices=CAPTURES, default="transparent", help="(default: %(default)s)")
    boot.add_argument(
        "--outbound-address",
        default=DEFAULT_OUTBOUND,
        metavar="HOST:PORT",
        help="proxy mode's listener (default: %(default)s)",
    )
    boot.add_argument(
        "--admin-address",
        default="127.0.0.1:15000",
        metavar="HOST:PORT",
        help="Envoy's admin (default: %(default)s)",
    )
    boot.add_argument("--sotw", action="store_true", help="state-of-the-world ADS instead of delta")
    boot.add_argument(
        "--access-log",
        choices=["on", "off"],
        default="on",
        help="one access-log line per request on Envoy's stdout, or none (default: %(default)s)",
    )
    boot.add_argument(
        "--readiness-address",
        metavar="HOST:PORT",
        help="also a listener here answering GET /ready from the admin (for a kubelet probe)",
    )
    boot.add_argument("--output", metavar="FILE", help="write the bootstrap to FILE instead of printing it")

    cap = sub.add_parser("capture", help="print or apply the iptables rules of transparent capture")
    cap.add_argument(
        "--service-cidr",
        required=True,
        action="append",
        metavar="CIDR",
        help="the cluster's Service CIDR; repeat for dual stack (one IPv4, one IPv6)",
    )
    cap.add_argument("--port", type=int, default=15001, help="the sidecar's outbound capture port (15001)")
    cap.add_argument(
        "--proxy-uid",
        type=int,
        default=1337,
        metavar="UID",
        help="the uid the sidecar's Envoy runs as: its traffic is never captured (default 1337)",
    )
    cap.add_argument(
        "--inbound",
        action="store_true",
        help="also send TCP arriving at the pod to the sidecar's inbound listener (15006)",
    )
    mode = cap.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="apply in the current network namespace")
    mode.add_argument("--remove", action="store_true", help="remove rules applied before")
    cap.set_defaults(func=cmd_capture)

    inject = sub.add_parser(
        "inject", help="add the gammaxds sidecar to Deployments, StatefulSets, DaemonSets, Jobs and Pods"
    )
    inject.add_argument(
        "-f", "--filename", required=True, metavar="FILE|-", help="YAML manifests to rewrite (- for stdin)"
    )
    inject.add_argument("--uninject", action="store_true", help="remove what inject added, and nothing else")
    add_inject_arguments(inject)
    inject.set_defaults(func=cmd_inject)

    status = sub.add_parser("status", help="one line per connected sidecar")
    status.add_argument(
        "--admin-address",
        default=DEFAULT_ADMIN,
        metavar="HOST:PORT",
        help="the control plane's admin (default: %(default)s)",
    )

    describe = sub.add_parser("describe", help="why requests go where they go; what a sidecar has")
    what = describe.add_subparsers(dest="what", required=True, metavar="service|proxy")
    svc = what.add_parser(
        "service", help="the routes, rules, backends and endpoints clients of a Service get"
    )
    svc.add_argument("name", metavar="NAME.NS", help="the Service, as NAME.NAMESPACE")
    svc.add_argument(
        "--from",
        dest="client_namespace",
        metavar="NS",
        help="the clients' namespace (default: the Service's own)",
    )
    svc.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="PATH",
        help="describe from these files offline, instead of asking the running control plane (repeatable)",
    )
    proxy = what.add_parser("proxy", help="the config a connected sidecar was sent and acknowledged")
    proxy.add_argument("node", metavar="NODE", help="the sidecar's node id (see gammaxds status)")
    for p in (svc, proxy):
        p.add_argument(
            "--admin-address",
            default=DEFAULT_ADMIN,
            metavar="HOST:PORT",
            help="the control plane's admin (default: %(default)s)",
        )
        p.add_argument("--output", choices=["table", "json"], default="table", help="(default: %(default)s)")
        p.set_defaults(func=cmd_describe)

    demo = sub.add_parser("demo", help="run the demo mesh on this machine and walk through it")
    demo.add_argument("--keep", action="store_true", help="leave the mesh running until Ctrl-C")

    completion = sub.add_parser("completion", help="print the shell completion script for bash or zsh")
    completion.add_argument("shell", choices=["bash", "zsh"], help="the shell the script is for")
    completion.set_defaults(func=cmd_completion)
    return parser


# Commands that print to stdout and end: when the reader goes away (`gammaxds translate ... | head`) they end
# quietly, as a C tool killed by SIGPIPE does. The servers keep Python's default (SIGPIPE ignored), since a
# client closing a connection must never end them.
PRINTING_COMMANDS = frozenset(
    {"translate", "bootstrap", "capture", "inject", "status", "describe", "completion"}
)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command in PRINTING_COMMANDS and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    func = getattr(args, "func", None)
    if func is None:
        from . import commands

        func = getattr(commands, f"cmd_{args.command}")
    raise SystemExit(func(args))
