"""`gammaxds describe service|proxy`: asks the running control plane's admin API, or (service, with
`--manifests`) translates manifests offline, and prints the table."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..admin.client import AdminUnreachable, admin_get
from .table import render_proxy, render_service


class DescribeError(RuntimeError):
    """One line for the user: what is wrong and what to do (exit 1)."""


class UsageError(DescribeError):
    """The command line itself is wrong (exit 2)."""


def _service_name(text: str) -> tuple[str, str]:
    name, dot, namespace = text.partition(".")
    if not dot or not name or not namespace or "." in namespace:
        raise UsageError(f"service {text!r}: expected NAME.NAMESPACE (e.g. reviews.store)")
    return namespace, name


def _admin_get(address: str, path: str, query: dict[str, str]) -> Any:
    try:
        return admin_get(address, path, query)
    except AdminUnreachable as err:
        hint = " (or --manifests PATH to describe files offline)" if path.endswith("/service") else ""
        raise DescribeError(f"{err}{hint}") from None


def _offline_service(paths: list[str], namespace: str, name: str, client: str | None) -> dict[str, Any]:
    from ..model import load_paths
    from ..translate import Translator
    from .service import UnknownService, describe_service

    loaded = load_paths(paths)
    unreadable = [e for e in loaded.errors if e.whole_file]
    if unreadable:
        raise DescribeError(str(unreadable[0]))
    translation = Translator().load(loaded.world())
    try:
        return describe_service(translation, namespace, name, client, loaded.errors)
    except UnknownService as err:
        raise DescribeError(f"{err} in {', '.join(paths)}") from None


def run_describe(args: argparse.Namespace) -> int:
    try:
        if args.what == "service":
            namespace, name = _service_name(args.name)
            if args.manifests:
                data = _offline_service(args.manifests, namespace, name, args.client_namespace)
            else:
                query = {"namespace": namespace, "name": name}
                if args.client_namespace:
                    query["from"] = args.client_namespace
                data = _admin_get(args.admin_address, "/debug/describe/service", query)
            text = json.dumps(data, indent=2) + "\n" if args.output == "json" else render_service(data)
        else:
            data = _admin_get(args.admin_address, "/debug/describe/proxy", {"node": args.node})
            text = json.dumps(data, indent=2) + "\n" if args.output == "json" else render_proxy(data)
    except DescribeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    sys.stdout.write(text)
    return 0
