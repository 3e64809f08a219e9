"""World → views. Pure in its results; memoised so that a resource whose inputs are the very same objects as in
the previous World is returned as the very same message (the snapshot cache then skips re-serialising it).
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any

from envoy.config.route.v3 import route_pb2

from ..model import EndpointSlice, Route, Service, ServicePort, World
from ..model.status import RouteStatuses
from ..model.world import Key
from .decisions import decide, rule_references
from .envoy.clusters import blackhole_cluster, build_cluster, passthrough_cluster
from .envoy.endpoints import build_load_assignment
from .envoy.listeners import (
    proxy_listener,
    service_listener,
    virtual_inbound_listener,
    virtual_outbound_listener,
)
from .envoy.names import PROXY_ROUTE_CONFIG, cluster_name, route_config_name
from .envoy.protos import base_pb2
from .envoy.protos import route_components_pb2 as rc
from .envoy.replies import NO_SERVICE_REASON, NO_SERVICE_VHOST, metadata, no_route_reason
from .envoy.routes import build_routes, passthrough_route
from .incremental import path_for
from .ir import RuleDecision, ServiceKey
from .memo import Memo
from .mesh.binding import Bindings, PortKey, bind_routes
from .services import is_http, parent_problem, proxied_ports
from .statuses import route_statuses
from .view import ENDPOINT_TYPE, ROUTE_TYPE, View, ViewKey

ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute"})


class Translator:
    """Keeps memos across Worlds. `load(world)` gives a Translation whose views are built on demand."""

    def __init__(self) -> None:
        self.memos: dict[str, Memo] = {
            name: Memo()
            for name in (
                "references",
                "decision",
                "cluster",
                "endpoints",
                "listener",
                "route_config",
                "vhost",
                "proxy",
                "view",
            )
        }
        self._last: Translation | None = None

    def load(self, world: World) -> Translation:
        last = self._last
        changed: set[Key] | None = None
        if last is not None:
            changed = world.diff(last.world)
            world = world.successor_of(last.world, changed)
        derived = None
        path = path_for(kind for kind, _ns, _name in changed) if changed is not None else "full"
        if last is not None and changed is not None and path == "endpoints":
            # Only EndpointSlices changed: everything but their ClusterLoadAssignments is reused as is, and
            # the memos keep their generation (nothing else was looked at, so nothing else may be dropped).
            derived = Translation(self, world, last, changed)
        elif last is not None and changed is not None and path == "routes":
            # Only routes changed: the same, for the route configurations of the Service ports they bind.
            derived = Translation.after_route_change(self, world, last)
        if derived is not None:
            translation = derived
        else:
            for memo in self.memos.values():
                memo.next_generation()
            translation = Translation(self, world)
        self._last = translation
        return translation

    @property
    def built(self) -> int:
        """How many resources were built (not reused) so far: the incremental-translation counter (views and
        rule decisions and references are not resources)."""
        return sum(m.built for n, m in self.memos.items() if n not in ("view", "decision", "references"))


class Translation:
    def __init__(
        self,
        translator: Translator,
        world: World,
        previous: Translation | None = None,
        changed: set[Key] | None = None,
        bindings: Bindings | None = None,
    ) -> None:
        self.world = world
        self.memos = translator.memos
        self._views: dict[ViewKey, View] = {}
        # An endpoints-only successor of `previous`: its views are `previous`'s, with these CLAs replaced.
        self._previous: Translation | None = None
        self._changed_endpoints: dict[str, Any] = {}
        # A routes-only successor of `previous`: its views are `previous`'s, with these ports' routes rebuilt.
        self._changed_ports: set[PortKey] = set()
        # Each proxy-mode view's virtual hosts by Service port (client namespace → entries), for the next
        # routes-only change
        self._proxy_vhosts: dict[str, list[tuple[PortKey, rc.VirtualHost]]] = {}
        if previous is not None and changed is not None:
            self._derive(previous, changed, bindings)
            return
        self.bindings: Bindings = bind_routes(world)
        self.consumer_namespaces = self.bindings.consumer_namespaces()

    @classmethod
    def after_route_change(
        cls, translator: Translator, world: World, previous: Translation
    ) -> Translation | None:
        """Only routes changed: clusters, endpoints and listeners do not depend on them (see the memo inputs),
        so they are `previous`'s; views rebuild the route configurations of the Service ports whose routes
        changed. None when a namespace started or stopped having consumer routes (its transparent view is no
        longer the shared one): a full translation then."""
        bindings = bind_routes(world)
        consumers = bindings.consumer_namespaces()
        if consumers != previous.consumer_namespaces:
            return None
        out = cls(translator, world, previous, set(), bindings)
        old, new = previous.bindings.by_port, bindings.by_port
        out._changed_ports = {
            port for port in old.keys() | new.keys() if not _same_groups(old.get(port), new.get(port))
        }
        return out

    def _derive(self, previous: Translation, changed: set[Key], bindings: Bindings | None) -> None:
        """Only EndpointSlices (`changed`), or only routes (new `bindings`), changed: clusters and listeners
        do not depend on either (see the memo inputs), so they are the previous translation's, and so is
        whatever of bindings, status and endpoints the change left alone; only affected CLAs are rebuilt."""
        self.bindings = previous.bindings if bindings is None else bindings
        # Unchanged by a routes-only derivation too: `after_route_change` checked it.
        self.consumer_namespaces = previous.consumer_namespaces
        done = previous.__dict__
        kept = [
            "service_ports",
            "clusters",
            "frontends",
            "_frontend_index",
            "service_listeners",
            "quiet_service_listeners",
            "virtual_outbound",
        ]
        if bindings is None:
            kept.append("statuses")  # status follows the routes
        for name in kept:
            if name in done:
                self.__dict__[name] = done[name]
        self._previous = previous
        previous._previous = None  # one step back is all a view needs; older translations are freed
        if not changed:  # no EndpointSlice changed: the endpoints too are the previous ones
            for name in ("endpoints", "_endpoint_index"):
                if name in done:
                    self.__dict__[name] = done[name]
            return
        if "endpoints" not in done:
            return
        self.__dict__["_endpoint_index"] = index = previous._endpoint_index
        services: set[tuple[str, str]] = set()
        for world in (previous.world, self.world):
            for key in changed:
                s = world.objects.get(key)
                if isinstance(s, EndpointSlice) and s.service_name:
                    services.add((key[1], s.service_name))
        endpoints = list(done["endpoints"])
        memo = self.memos["endpoints"]
        for ns, name in sorted(services):
            service = self.world.services.get((ns, name))
            if service is None:
                continue
            slices = tuple(self.world.slices_by_service.get((ns, name), ()))
            for p in proxied_ports(service):
                cname = cluster_name(ns, name, p.port)
                cla = memo.get(
                    cname,
                    (service, *slices),
                    partial(build_load_assignment, service, p, slices),
                )
                i = index[cname]
                if endpoints[i] is not cla:
                    endpoints[i] = cla
                    self._changed_endpoints[cname] = cla
        self.__dict__["endpoints"] = tuple(endpoints)

    # --- view-independent resources ---------------------------------------------------------------------

    @cached_property
    def service_ports(self) -> list[tuple[Service, ServicePort]]:
        return [(s, p) for s in self.world.services.values() for p in proxied_ports(s)]

    @cached_property
    def clusters(self) -> tuple[Any, ...]:
        memo = self.memos["cluster"]
        out = [
            memo.get(cluster_name(s.namespace, s.name, p.port), (s,), partial(build_cluster, s, p))
            for s, p in self.service_ports
        ]
        return tuple(sorted(out, key=lambda c: c.name))

    @cached_property
    def endpoints(self) -> tuple[Any, ...]:
        memo = self.memos["endpoints"]
        out = []
        for s, p in self.service_ports:
            slices = tuple(self.world.slices_by_service.get((s.namespace, s.name), ()))
            name = cluster_name(s.namespace, s.name, p.port)
            out.append(memo.get(name, (s, *slices), partial(build_load_assignment, s, p, slices)))
        return tuple(sorted(out, key=lambda c: c.cluster_name))

    @cached_property
    def _endpoint_index(self) -> dict[str, int]:
        return {cla.cluster_name: i for i, cla in enumerate(self.endpoints)}

    @cached_property
    def frontends(self) -> list[tuple[Service, ServicePort, str]]:
        """Service ports with a cluster IP: what a client can dial and what routes can attach to."""
        out = []
        for s, p in self.service_ports:
            if parent_problem(s) is None and s.cluster_ip:
                out.append((s, p, s.cluster_ip))
        return out

    @cached_property
    def _frontend_index(self) -> dict[PortKey, tuple[Service, ServicePort, str]]:
        """The HTTP frontends by Service port: those that have route configurations."""
        return {(s.namespace, s.name, p.port): (s, p, ip) for s, p, ip in self.frontends if is_http(p)}

    @cached_property
    def service_listeners(self) -> tuple[Any, ...]:
        return self._service_listeners(access_log=True)

    @cached_property
    def quiet_service_listeners(self) -> tuple[Any, ...]:
        """For sidecars with `access_log: "off"`: the same listeners without access logs."""
        return self._service_listeners(access_log=False)

    def _service_listeners(self, access_log: bool) -> tuple[Any, ...]:
        memo = self.memos["listener"]
        out = [
            memo.get(
                (s.namespace, s.name, p.port, access_log),
                (s,),
                partial(service_listener, s, p, ip, access_log),
            )
            for s, p, ip in self.frontends
        ]
        return tuple(out)

    @cached_property
    def virtual_outbound(self) -> Any:
        frontends = tuple(s for s, _p, _ip in self.frontends)
        return self.memos["listener"].get(
            "virtualOutbound",
            frontends,
            lambda: virtual_outbound_listener([ip for _s, _p, ip in self.frontends]),
        )

    @cached_property
    def statuses(self) -> RouteStatuses:
        return route_statuses(self.world, self.bindings, self.decision)

    # --- routes -----------------------------------------------------------------------------------------

    def decision(self, route: Route, rule: int) -> RuleDecision:
        """A rule's decision, memoised on the route and the Services it references: the routes and the status
        both read it, and a change elsewhere in the World does not decide it again."""
        world = self.world
        refs = rule_references(route, rule)
        inputs = (route, *(world.services.get(ref) for ref in refs))
        return self.memos["decision"].get(
            (route.kind, route.namespace, route.name, rule), inputs, lambda: decide(world, route, rule)
        )

    def _route_references(self, route: Route) -> tuple[ServiceKey, ...]:
        """Every Service the route's rules name, memoised on the route (asked once per Service port and view)."""
        return self.memos["references"].get(
            (route.kind, route.namespace, route.name),
            (route,),
            lambda: tuple(ref for i in range(len(route.spec.rules)) for ref in rule_references(route, i)),
        )

    def _references(self, routes: list[Route]) -> tuple[Service | None, ...]:
        """The Services the routes' rules name (resolved or not: one that appears later changes them)."""
        services = self.world.services
        return tuple(services.get(ref) for r in routes for ref in self._route_references(r))

    def _group(
        self, service: Service, port: ServicePort, client_ns: str
    ) -> tuple[PortKey, str, list[Any], tuple[Any, ...]]:
        """The routes a client in `client_ns` gets for this Service port (GAMMA's producer/consumer choice), and
        every object the resulting Envoy routes depend on: the memo key's inputs."""
        key: PortKey = (service.namespace, service.name, port.port)
        group, routes = self.bindings.routes_for(key, client_ns)
        return key, group, routes, (service, *routes, *self._references(routes))

    def _entries(self, port: ServicePort, key: PortKey, routes: list[Any]) -> list[rc.Route]:
        if not routes:
            return [passthrough_route(cluster_name(key[0], key[1], port.port))]
        return build_routes(self.decision, routes, port.port)

    def route_config(
        self, service: Service, port: ServicePort, client_ns: str
    ) -> route_pb2.RouteConfiguration:
        key, group, routes, inputs = self._group(service, port, client_ns)
        name = route_config_name(service.namespace, service.name, port.port)

        def build() -> route_pb2.RouteConfiguration:
            vhost = rc.VirtualHost(
                name=name,
                domains=["*"],
                routes=self._entries(port, key, routes),
                metadata=_no_route_metadata(key, routes),
            )
            return route_pb2.RouteConfiguration(
                name=name, virtual_hosts=[vhost], validate_clusters={"value": False}
            )

        return self.memos["route_config"].get((key, group), inputs, build)

    def _vhost(self, service: Service, port: ServicePort, ip: str, client_ns: str) -> rc.VirtualHost:
        key, group, routes, inputs = self._group(service, port, client_ns)
        local = service.namespace == client_ns

        def build() -> rc.VirtualHost:
            return rc.VirtualHost(
                name=route_config_name(service.namespace, service.name, port.port),
                domains=proxy_domains(service, port.port, ip, local),
                routes=self._entries(port, key, routes),
                metadata=_no_route_metadata(key, routes),
            )

        return self.memos["vhost"].get((key, group, local), inputs, build)

    # --- views ------------------------------------------------------------------------------------------

    def view(self, key: ViewKey) -> View:
        view = self._views.get(key)
        if view is None:
            view = self._derived_view(key) or self._view(key)
            self._views[key] = view
        return view

    def _derived_view(self, key: ViewKey) -> View | None:
        """The previous translation's view of `key` with the rebuilt CLAs or route configurations swapped in,
        or None (build it whole)."""
        previous = self._previous
        old = previous._views.get(key) if previous is not None else None
        # Every view of `previous` holds its endpoints (built from them, or memoised on their identity).
        if old is None or previous is None or len(old.endpoints) != len(previous.endpoints):
            return None
        changed: dict[str, dict[str, Any]] = {}
        if self._changed_endpoints:
            changed[ENDPOINT_TYPE] = self._changed_endpoints
        routes = self._changed_routes(key, old, previous)
        if routes is None:
            return None
        if routes:
            changed[ROUTE_TYPE] = routes
        if not changed:
            return old
        endpoints = self.endpoints if ENDPOINT_TYPE in changed else None
        routes_tuple = None
        if ROUTE_TYPE in changed:
            # The same names in the same (sorted) order: only routes changed, not which Service ports exist.
            configs = {**old.by_type[ROUTE_TYPE], **changed[ROUTE_TYPE]}
            routes_tuple = tuple(configs[r.name] for r in old.routes)
        return old.derive(changed, endpoints=endpoints, routes=routes_tuple)

    def _changed_routes(self, key: ViewKey, old: View, previous: Translation) -> dict[str, Any] | None:
        """The route configurations of `key`'s view that differ from `old`'s after a routes-only change, by
        name; None if they cannot be told apart from `old` alone."""
        if key.capture == "proxy":
            entries = previous._proxy_vhosts.get(key.namespace)
            if entries is None:
                return None
            if not self._changed_ports:
                self._proxy_vhosts[key.namespace] = entries
                return {}
            fresh = list(entries)
            for i, (port, _vhost) in enumerate(entries):
                if port in self._changed_ports:
                    s, p, ip = self._frontend_index[port]
                    fresh[i] = (port, self._vhost(s, p, ip, key.namespace))
            self._proxy_vhosts[key.namespace] = fresh
            if all(a[1] is b[1] for a, b in zip(entries, fresh, strict=True)):
                return {}
            config = self._proxy_config(key.namespace, [vhost for _port, vhost in fresh])
            return {config.name: config}
        out: dict[str, Any] = {}
        configs = old.by_type[ROUTE_TYPE]
        for port in self._changed_ports:
            frontend = self._frontend_index.get(port)
            if frontend is None:
                continue  # no cluster IP, or not HTTP: routes do not attach to it
            config = self.route_config(frontend[0], frontend[1], key.namespace)
            if configs.get(config.name) is not config:
                out[config.name] = config
        return out

    def _view(self, key: ViewKey) -> View:
        if key.capture == "proxy":
            return self._proxy_view(key)
        shared = key.namespace not in self.consumer_namespaces
        # Views differ by access log in their listeners only: clusters, endpoints and routes are the same objects.
        view_key = ("transparent", "" if shared else key.namespace, key.access_log)
        frontends = [(s, p) for s, p, _ip in self.frontends if is_http(p)]
        configs = tuple(self.route_config(s, p, key.namespace) for s, p in frontends)
        service_listeners = self.service_listeners if key.access_log else self.quiet_service_listeners
        listeners = tuple(
            sorted(
                (self.virtual_outbound, virtual_inbound_listener(key.access_log), *service_listeners),
                key=lambda lis: lis.name,
            )
        )
        return self.memos["view"].get(
            view_key,
            (*self.clusters, *self.endpoints, *listeners, *configs),
            lambda: View(
                clusters=tuple(
                    sorted((*self.clusters, passthrough_cluster(), blackhole_cluster()), key=lambda c: c.name)
                ),
                endpoints=self.endpoints,
                listeners=listeners,
                routes=tuple(sorted(configs, key=lambda r: r.name)),
            ),
        )

    def _proxy_view(self, key: ViewKey) -> View:
        entries: list[tuple[PortKey, rc.VirtualHost]] = []
        seen: set[str] = set()
        for port, (s, p, ip) in self._frontend_index.items():
            vh = self._vhost(s, p, ip, key.namespace)
            if seen.isdisjoint(vh.domains):
                entries.append((port, vh))
                seen.update(vh.domains)
        entries.sort(key=lambda e: e[1].name)
        self._proxy_vhosts[key.namespace] = entries
        config = self._proxy_config(key.namespace, [vh for _port, vh in entries])
        listener = self.memos["proxy"].get(
            ("listener", key.outbound, key.access_log),
            (),
            lambda: proxy_listener(key.outbound, key.access_log),
        )
        return self.memos["view"].get(
            ("proxy", key.namespace, key.outbound, key.access_log),
            (*self.clusters, *self.endpoints, listener, config),
            lambda: View(
                clusters=self.clusters, endpoints=self.endpoints, listeners=(listener,), routes=(config,)
            ),
        )

    def _proxy_config(self, namespace: str, vhosts: list[rc.VirtualHost]) -> route_pb2.RouteConfiguration:
        """The one route configuration of a proxy-mode view: every Service port is a virtual host, and a last one
        takes the hosts that name no Service port (no routes: 404, with a body that says so)."""
        return self.memos["proxy"].get(
            ("rc", namespace),
            tuple(vhosts),
            lambda: route_pb2.RouteConfiguration(
                name=PROXY_ROUTE_CONFIG,
                virtual_hosts=[*vhosts, no_service_vhost()],
                validate_clusters={"value": False},
            ),
        )


def _no_route_metadata(key: PortKey, routes: list[Any]) -> base_pb2.Metadata | None:
    """With routes attached, what the sidecar's 404 says when none matches (see `replies`); None without: the
    `default` route then takes every request."""
    return metadata(no_route=no_route_reason(*key)) if routes else None


def _same_groups(a: dict[str, list[Any]] | None, b: dict[str, list[Any]] | None) -> bool:
    """Whether two ports' route groups hold the very same route objects, in the same order."""
    if not a or not b:
        return not a and not b
    return a.keys() == b.keys() and all(
        len(a[ns]) == len(b[ns]) and all(x is y for x, y in zip(a[ns], b[ns], strict=True)) for ns in a
    )


def no_service_vhost() -> rc.VirtualHost:
    """Proxy mode: the virtual host of a `Host` that names no Service port. Envoy picks `*` only when no other
    domain matches, and with no routes answers 404 (`NR`) as it would with no virtual host at all."""
    return rc.VirtualHost(name=NO_SERVICE_VHOST, domains=["*"], metadata=metadata(no_route=NO_SERVICE_REASON))


def proxy_domains(service: Service, port: int, cluster_ip: str, local: bool) -> list[str]:
    """How a proxy-mode client may name a Service port in `Host` (README, "The sidecar contract"): short name only from its namespace."""
    ns, name = service.namespace, service.name
    hosts = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
    if local:
        hosts.insert(0, name)
    hosts.append(f"[{cluster_ip}]" if ":" in cluster_ip else cluster_ip)
    out = [f"{h}:{port}" for h in hosts]
    if port == 80:
        out += hosts
    return out


def translate_view(world: World, key: ViewKey) -> View:
    return Translator().load(world).view(key)


def translate_status(world: World) -> RouteStatuses:
    return route_statuses(world, bind_routes(world))
