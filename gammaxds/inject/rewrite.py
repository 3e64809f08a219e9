"""The sidecar rewriter: a workload's pod template in, the same template with the gammaxds sidecar out.

Pure functions on plain dicts (the JSON form of Kubernetes objects), shared by `gammaxds inject` and the
admission webhook, so a pod meshed by either is meshed the same way. Nothing here reads files, the network or
the clock; every input is copied, never changed in place.

What `inject` adds to a pod (or a workload's pod template), in front of the pod's own init containers:

- `gammaxds-init`: `gammaxds capture --apply` in the pod's network namespace (root, NET_ADMIN and NET_RAW,
  nothing else privileged). Traffic of uid 1337, the proxy's, is never captured.
- `gammaxds-bootstrap`: `gammaxds bootstrap --output ...` writes the Envoy bootstrap into the shared emptyDir
  `gammaxds-config`; the node id and namespace come from the downward API (`$(POD_NAME).$(POD_NAMESPACE)`).
- `gammaxds-proxy`: Envoy, as a Kubernetes native sidecar (an init container with `restartPolicy: Always`,
  Kubernetes 1.29 and later): the kubelet starts it before the pod's other init containers and its app
  containers, waits for its startup probe (Envoy's `/ready`, served on 15021 by the bootstrap's readiness
  listener, true once the first configuration arrived from the control plane), keeps it running beside the
  app, and stops it after the app, so a Job still completes.

It also records what it added in the annotation `gammaxds.io/injected` (container and volume names, and the
keys it had to create), which is how `uninject` removes exactly that and how an already injected pod is
recognised and left unchanged: injecting twice gives the same object.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..bootstrap import split_host_port
from ..capture import DEFAULT_PROXY_UID, CaptureError, rules
from .options import DEFAULT_IMAGE, DEFAULT_PROXY_IMAGE, DEFAULT_SERVICE_CIDR, DEFAULT_XDS_ADDRESS

INIT_CONTAINER = "gammaxds-init"
BOOTSTRAP_CONTAINER = "gammaxds-bootstrap"
PROXY_CONTAINER = "gammaxds-proxy"
CONFIG_VOLUME = "gammaxds-config"
OUR_CONTAINERS = (INIT_CONTAINER, BOOTSTRAP_CONTAINER, PROXY_CONTAINER)
OUR_VOLUMES = (CONFIG_VOLUME,)

CONFIG_DIR = "/etc/gammaxds"
BOOTSTRAP_FILE = f"{CONFIG_DIR}/envoy.yaml"
PROXY_UID = DEFAULT_PROXY_UID
READINESS_PORT = 15021
READINESS_PATH = "/ready"
# The sidecar's own ports (admin 15000, outbound 15001, inbound 15006, readiness 15021, ...): an app
# container may not declare one, and capture never redirects them.
SIDECAR_PORTS = range(15000, 15100)

ANNOTATION_INJECT = "gammaxds.io/inject"
ANNOTATION_INBOUND = "gammaxds.io/inbound-capture"
ANNOTATION_STATUS = "gammaxds.io/injected"
# annotation → (requests|limits, resource) of the proxy container
RESOURCE_ANNOTATIONS: dict[str, tuple[str, str]] = {
    "gammaxds.io/proxy-cpu": ("requests", "cpu"),
    "gammaxds.io/proxy-memory": ("requests", "memory"),
    "gammaxds.io/proxy-cpu-limit": ("limits", "cpu"),
    "gammaxds.io/proxy-memory-limit": ("limits", "memory"),
}
PROXY_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}

# Where each kind keeps its pod template; a Pod is its own template.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "Pod": (),
}

_QUANTITY = re.compile(
    r"^(?P<num>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{s: Decimal(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
}


class InjectError(ValueError):
    """An object that cannot be rewritten: which object, which field, and why, as one line."""

    def __init__(self, obj: str, field_path: str, reason: str) -> None:
        self.obj, self.field, self.reason = obj, field_path, reason
        super().__init__(": ".join(part for part in (obj, field_path, reason) if part))


class ConfigError(ValueError):
    """A bad injection setting (a flag): names the flag."""


@dataclass(frozen=True)
class InjectConfig:
    """What every injected pod gets; the CLI flags and the webhook's flags build one of these."""

    image: str = DEFAULT_IMAGE
    proxy_image: str = DEFAULT_PROXY_IMAGE
    xds_address: str = DEFAULT_XDS_ADDRESS
    service_cidrs: tuple[str, ...] = (DEFAULT_SERVICE_CIDR,)
    inbound: bool = False

    def validate(self, flag_prefix: str = "") -> InjectConfig:
        """This config when every setting is usable; else ConfigError naming the flag (`--{flag_prefix}image`
        and so on): a bad setting fails at start, never pod by pod."""
        flag = f"--{flag_prefix}"
        for name, image in (("image", self.image), ("proxy-image", self.proxy_image)):
            if not image or any(c.isspace() for c in image):
                raise ConfigError(f"{flag}{name}: not an image reference: {image!r}")
        try:
            _host, port = split_host_port(self.xds_address)
        except ValueError as err:
            raise ConfigError(f"{flag}xds-address: {err}") from None
        if not 1 <= port <= 65535:
            raise ConfigError(f"{flag}xds-address: port {port} is not in 1..65535")
        try:
            rules(list(self.service_cidrs))
        except CaptureError as err:
            raise ConfigError(f"{flag}service-cidr: {err}") from None
        return self


@dataclass(frozen=True)
class Outcome:
    """The rewritten object (a fresh copy, or the input itself when unchanged) and, when nothing was changed
    for a reason worth telling, that reason."""

    object: Any
    changed: bool = False
    note: str | None = None


@dataclass
class _Status:
    """The content of `gammaxds.io/injected`: what inject added, so uninject removes exactly that."""

    init_containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # keys of the pod inject created (absent before)

    def encode(self) -> str:
        data: dict[str, Any] = {"initContainers": self.init_containers, "volumes": self.volumes}
        if self.created:
            data["created"] = self.created
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, text: Any, where: _Where) -> _Status:
        field_path = where.annotation_path(ANNOTATION_STATUS)
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise where.error(
                field_path, "not what gammaxds writes there (a JSON object); remove it to inject"
            )
        out = cls()
        for key, attr, allowed in (
            ("initContainers", "init_containers", OUR_CONTAINERS),
            ("volumes", "volumes", OUR_VOLUMES),
            ("created", "created", _CREATABLE),
        ):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(v in allowed for v in value):
                raise where.error(field_path, f"{key}: expected a list of {', '.join(allowed)}")
            setattr(out, attr, list(value))
        return out


_CREATABLE = ("metadata", "metadata.annotations", "spec.initContainers", "spec.volumes")


@dataclass(frozen=True)
class _Where:
    """Names the object and the pod template's field prefix, for errors that say exactly where."""

    obj: str
    prefix: str  # "spec.template." for a workload, "" for a Pod

    def error(self, field_path: str, reason: str) -> InjectError:
        return InjectError(self.obj, field_path, reason)

    def at(self, path: str) -> str:
        return f"{self.prefix}{path}"

    def annotation_path(self, key: str, *, of_object: bool = False) -> str:
        base = "metadata" if of_object else self.at("metadata")
        return f'{base}.annotations["{key}"]'


def describe(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` (or `Kind/name` without a namespace): how errors name an object."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    kind = obj.get("kind") or "?"
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "(no name)")
    namespace = meta.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def injectable(obj: Any) -> bool:
    """Whether `obj` is of a kind the rewriter changes (others pass through unchanged)."""
    return isinstance(obj, Mapping) and obj.get("kind") in TEMPLATE_PATHS


def inject(obj: Mapping[str, Any], config: InjectConfig = InjectConfig()) -> Outcome:
    """Add the sidecar to a Deployment, StatefulSet, DaemonSet, Job or Pod; any other kind is returned as is.

    Unchanged, with a note: an already injected pod, one that opted out (`gammaxds.io/inject: "false"` on the
    pod template or the object), and a `hostNetwork` pod (capture would rewrite the node's own iptables).
    Raises InjectError for what cannot be meshed as given."""
    if not injectable(obj):
        return Outcome(obj)
    where, template = _template(obj)
    annotations = _annotations(obj, template, where)
    choice = _bool_annotation(annotations, ANNOTATION_INJECT, where)
    if choice is False:
        return Outcome(obj, note=f'opted out ({ANNOTATION_INJECT}: "false")')
    spec = _pod_spec(template, where)
    if _status_of(template, spec, where) is not None:
        return Outcome(obj, note="already injected")
    if spec.get("hostNetwork") is True:
        return Outcome(obj, note="hostNetwork pod: it shares the node's network namespace, not meshed")
    _check_app(spec, where)
    inbound = _bool_annotation(annotations, ANNOTATION_INBOUND, where)
    resources = _proxy_resources(annotations, where)

    out = copy.deepcopy(dict(obj))
    pod = _at(out, TEMPLATE_PATHS[str(obj["kind"])])
    status = _Status()
    if not isinstance(pod.get("metadata"), dict):
        pod["metadata"] = {}
        status.created.append("metadata")
    elif not isinstance(pod["metadata"].get("annotations"), dict):
        status.created.append("metadata.annotations")
    pod_spec = pod["spec"]
    for key in ("initContainers", "volumes"):
        if key not in pod_spec:
            status.created.append(f"spec.{key}")
    ours = _containers(config, inbound=config.inbound if inbound is None else inbound, resources=resources)
    pod_spec["initContainers"] = [*ours, *pod_spec.get("initContainers", [])]
    pod_spec["volumes"] = [*pod_spec.get("volumes", []), {"name": CONFIG_VOLUME, "emptyDir": {}}]
    status.init_containers = [c["name"] for c in ours]
    status.volumes = [CONFIG_VOLUME]
    if not isinstance(pod["metadata"].get("annotations"), dict):
        pod["metadata"]["annotations"] = {}
    pod["metadata"]["annotations"][ANNOTATION_STATUS] = status.encode()
    return Outcome(out, changed=True)


def uninject(obj: Mapping[str, Any]) -> Outcome:
    """Remove exactly what `inject` added (as its `gammaxds.io/injected` annotation records); an object that
    was not injected is returned as is. uninject(inject(x)) == x."""
    if not injectable(obj):
        return Outcome(obj)
    where, template = _template(obj)
    spec = _pod_spec(template, where)
    status = _status_of(template, spec, where, complete=False)
    if status is None:
        return Outcome(obj, note="not injected")
    out = copy.deepcopy(dict(obj))
    pod = _at(out, TEMPLATE_PATHS[str(obj["kind"])])
    pod_spec = pod["spec"]
    for key, names in (("initContainers", status.init_containers), ("volumes", status.volumes)):
        if isinstance(pod_spec.get(key), list):
            pod_spec[key] = [c for c in pod_spec[key] if not (isinstance(c, dict) and c.get("name") in names)]
            if not pod_spec[key] and f"spec.{key}" in status.created:
                del pod_spec[key]
    annotations = pod["metadata"]["annotations"]
    del annotations[ANNOTATION_STATUS]
    if "metadata" in status.created and not annotations and list(pod["metadata"]) == ["annotations"]:
        del pod["metadata"]
    elif "metadata.annotations" in status.created and not annotations:
        del pod["metadata"]["annotations"]
    return Outcome(out, changed=True)


def rewrite_document(doc: Any, fn: Any, config: InjectConfig | None = None) -> tuple[Any, list[str]]:
    """`fn` (inject or uninject) applied to one YAML document: an object, or each item of a `kind: List`.

    Returns the new document and the notes (`Kind/ns/name: why unchanged`). Raises InjectError, naming the
    item of a List as `items[i]`."""
    args = () if config is None else (config,)
    if not isinstance(doc, Mapping):
        raise InjectError("", "", f"not a Kubernetes object (a mapping), but {type(doc).__name__}")
    if not doc.get("kind"):
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        raise InjectError(str(name or ""), "kind", "missing: every Kubernetes object has a kind")
    if doc.get("kind") != "List":
        outcome = fn(doc, *args)
        return outcome.object, [f"{describe(doc)}: {outcome.note}"] if outcome.note else []
    items = doc.get("items")
    if not isinstance(items, list):
        raise InjectError("List", "items", "expected a list of objects")
    new_items, notes, changed = [], [], False
    for i, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise InjectError("", "", f"not a Kubernetes object (a mapping), but {type(item).__name__}")
            outcome = fn(item, *args)
        except InjectError as err:
            raise InjectError(
                ": ".join(p for p in (f"items[{i}]", err.obj) if p), err.field, err.reason
            ) from None
        new_items.append(outcome.object)
        changed |= outcome.changed
        if outcome.note:
            notes.append(f"items[{i}]: {describe(item)}: {outcome.note}")
    return ({**doc, "items": new_items} if changed else doc), notes


# --- what we add ---------------------------------------------------------------------------------------


def _downward(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _containers(
    config: InjectConfig, *, inbound: bool, resources: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The three init containers, in the order the kubelet runs them."""
    cidrs = [arg for cidr in config.service_cidrs for arg in ("--service-cidr", cidr)]
    locked_down = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": PROXY_UID,
        "runAsGroup": PROXY_UID,
        "capabilities": {"drop": ["ALL"]},
    }
    mount = {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR}
    probe = {"httpGet": {"path": READINESS_PATH, "port": READINESS_PORT}}
    capture = {
        "name": INIT_CONTAINER,
        "image": config.image,
        "command": ["gammaxds"],
        "args": [
            "capture",
            *cidrs,
            "--proxy-uid",
            str(PROXY_UID),
            *(["--inbound"] if inbound else []),
            "--apply",
        ],
        "resources": copy.deepcopy(INIT_RESOURCES),
        # iptables needs root, NET_ADMIN (to change the nat table) and NET_RAW; it writes its lock file
        # under /run, so the root filesystem stays writable for this short-lived step.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    }
    bootstrap = {
        "name": BOOTSTRAP_CONTAINER,
        "image": config.image,
        "command": ["gammaxds"],
        "args": [
            "bootstrap",
            "--node-id",
            "$(POD_NAME).$(POD_NAMESPACE)",
            "--namespace",
            "$(POD_NAMESPACE)",
            "--xds-address",
            config.xds_address,
            "--capture",
            "transparent",
            "--readiness-address",
            f"0.0.0.0:{READINESS_PORT}",
            "--output",
            BOOTSTRAP_FILE,
        ],
        "env": [_downward("POD_NAME", "metadata.name"), _downward("POD_NAMESPACE", "metadata.namespace")],
        "resources": copy.deepcopy(INIT_RESOURCES),
        "securityContext": copy.deepcopy(locked_down),
        "volumeMounts": [dict(mount)],
    }
    proxy = {
        "name": PROXY_CONTAINER,
        "image": config.proxy_image,
        # Envoy itself, not the image's entrypoint (which would switch users): the uid is set below.
        "command": ["envoy"],
        "args": [
            "-c",
            BOOTSTRAP_FILE,
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "--log-level",
            "warning",
        ],
        "restartPolicy": "Always",
        "ports": [{"name": "gammaxds-ready", "containerPort": READINESS_PORT, "protocol": "TCP"}],
        # The app starts only once Envoy is LIVE (its first configuration arrived); then readiness follows it.
        "startupProbe": {**probe, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 120},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3},
        "resources": resources,
        "securityContext": copy.deepcopy(locked_down),
        "volumeMounts": [{**mount, "readOnly": True}],
    }
    return [capture, bootstrap, proxy]


# --- reading and checking the input ----------------------------------------------------------------------


def _at(obj: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    for key in path:
        obj = obj[key]
    return obj


def _template(obj: Mapping[str, Any]) -> tuple[_Where, Mapping[str, Any]]:
    kind = str(obj["kind"])
    path = TEMPLATE_PATHS[kind]
    where = _Where(describe(obj), "".join(f"{p}." for p in path))
    if not isinstance(obj.get("metadata", {}), Mapping):
        raise where.error("metadata", "expected a mapping")
    node: Any = obj
    walked: list[str] = []
    for key in path:
        walked.append(key)
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            raise where.error(".".join(walked), f"missing: a {kind} needs a pod template")
        if not isinstance(node, Mapping):
            raise where.error(".".join(walked), "expected a mapping")
    return where, node


def _pod_spec(template: Mapping[str, Any], where: _Where) -> Mapping[str, Any]:
    if not isinstance(template.get("metadata", {}), Mapping):
        raise where.error(where.at("metadata"), "expected a mapping")
    spec = template.get("spec")
    if spec is None:
        raise where.error(where.at("spec"), "missing: a pod needs a spec with its containers")
    if not isinstance(spec, Mapping):
        raise where.error(where.at("spec"), "expected a mapping")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise where.error(where.at("spec.containers"), "a pod needs a list of at least one container")
    for key in ("containers", "initContainers", "volumes"):
        items = spec.get(key, [])
        if not isinstance(items, list):
            raise where.error(where.at(f"spec.{key}"), "expected a list")
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
                raise where.error(where.at(f"spec.{key}[{i}].name"), "missing: every entry needs a name")
    return spec


def _annotations(obj: Mapping[str, Any], template: Mapping[str, Any], where: _Where) -> dict[str, Any]:
    """The annotations that steer injection: the object's, overridden by its pod template's; each ours must be
    a string (a bare YAML `false` is a boolean, which the API server refuses in annotations)."""
    merged: dict[str, Any] = {}
    sources = [(obj, True), (template, False)] if where.prefix else [(obj, False)]
    for source, of_object in sources:
        meta = source.get("metadata") or {}
        annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
        if annotations is None:
            continue
        path = "metadata.annotations" if of_object else where.at("metadata.annotations")
        if not isinstance(annotations, Mapping):
            raise where.error(path, "expected a mapping of strings")
        for key, value in annotations.items():
            if isinstance(key, str) and key.startswith("gammaxds.io/"):
                if not isinstance(value, str):
                    raise where.error(
                        where.annotation_path(key, of_object=of_object),
                        f"must be a string (quote it), not {_type_name(value)}",
                    )
                merged[key] = (value, where.annotation_path(key, of_object=of_object))
    return merged


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _bool_annotation(annotations: Mapping[str, Any], key: str, where: _Where) -> bool | None:
    if key not in annotations:
        return None
    value, path = annotations[key]
    if value not in ("true", "false"):
        raise where.error(path, f'expected "true" or "false", got {value!r}')
    return bool(value == "true")


def _quantity(text: str) -> Decimal | None:
    match = _QUANTITY.match(text)
    if match is None:
        return None
    suffix = match["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(match["num"]) * Decimal(10) ** int(suffix[1:])
    return Decimal(match["num"]) * _SUFFIXES[suffix]


def _proxy_resources(annotations: Mapping[str, Any], where: _Where) -> dict[str, dict[str, str]]:
    resources = copy.deepcopy(PROXY_RESOURCES)
    paths: dict[tuple[str, str], str] = {}
    for key, (section, resource) in RESOURCE_ANNOTATIONS.items():
        if key in annotations:
            value, path = annotations[key]
            if _quantity(value) is None:
                raise where.error(path, f"not a Kubernetes quantity (such as 250m, 1, 128Mi): {value!r}")
            resources[section][resource] = value
            paths[(section, resource)] = path
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        request_amount, limit_amount = _quantity(request), _quantity(limit)
        # Both parse: the defaults are quantities, and every annotation was checked above.
        assert request_amount is not None and limit_amount is not None
        if request_amount > limit_amount:
            path = paths.get(("requests", resource)) or paths[("limits", resource)]
            raise where.error(path, f"the proxy's {resource} request {request} exceeds its limit {limit}")
    return resources


def _containers_of(spec: Mapping[str, Any]) -> Iterator[tuple[str, int, Mapping[str, Any]]]:
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key, [])):
            yield key, i, container


def _status_of(
    template: Mapping[str, Any], spec: Mapping[str, Any], where: _Where, *, complete: bool = True
) -> _Status | None:
    """What inject recorded on this pod (None when not injected), checked against the pod: a container or
    volume named like ours that the record does not account for is an error (we did not add it), and so,
    when `complete`, is a recorded one that is missing."""
    meta = template.get("metadata") or {}
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    raw = annotations.get(ANNOTATION_STATUS) if isinstance(annotations, Mapping) else None
    status = None if raw is None else _Status.decode(raw, where)
    recorded_containers = set(status.init_containers) if status else set()
    recorded_volumes = set(status.volumes) if status else set()
    for key, i, container in _containers_of(spec):
        name = container["name"]
        if name in OUR_CONTAINERS and (key != "initContainers" or name not in recorded_containers):
            raise where.error(
                where.at(f"spec.{key}[{i}].name"),
                f"{name} is the name of a container gammaxds adds, but gammaxds did not add this one "
                "(rename it)",
            )
    for i, volume in enumerate(spec.get("volumes", [])):
        if volume["name"] in OUR_VOLUMES and volume["name"] not in recorded_volumes:
            raise where.error(
                where.at(f"spec.volumes[{i}].name"),
                f"{volume['name']} is the name of the volume gammaxds adds, but gammaxds did not add this one "
                "(rename it)",
            )
    if status is not None and complete:
        have = {c["name"] for c in spec.get("initContainers", [])} | {
            v["name"] for v in spec.get("volumes", [])
        }
        missing = [n for n in (*status.init_containers, *status.volumes) if n not in have]
        if missing:
            raise where.error(
                where.annotation_path(ANNOTATION_STATUS),
                f"records {', '.join(missing)}, which the pod lacks (remove the annotation to inject again)",
            )
    return status


def _check_app(spec: Mapping[str, Any], where: _Where) -> None:
    """What would make the mesh misbehave silently: an app port among the sidecar's own, or an app running as
    the proxy's uid (capture never redirects that uid's traffic, so the app would bypass the mesh)."""
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    if pod_uid == PROXY_UID:
        raise where.error(
            where.at("spec.securityContext.runAsUser"),
            f"{PROXY_UID} is the proxy's uid, whose traffic is never captured: the app would bypass the mesh",
        )
    for key, i, container in _containers_of(spec):
        base = f"spec.{key}[{i}]"
        uid = (container.get("securityContext") or {}).get("runAsUser")
        if uid == PROXY_UID:
            raise where.error(
                where.at(f"{base}.securityContext.runAsUser"),
                f"{PROXY_UID} is the proxy's uid, whose traffic is never captured: the app would bypass the mesh",
            )
        for j, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, Mapping) else None
            if isinstance(number, int) and number in SIDECAR_PORTS:
                raise where.error(
                    where.at(f"{base}.ports[{j}].containerPort"),
                    f"{number} is one of the sidecar's own ports "
                    f"({SIDECAR_PORTS.start}-{SIDECAR_PORTS.stop - 1})",
                )
