"""A gRPC echo server and client without generated code, for GRPCRoute tests through real Envoy sidecars.

Why no protoc: what a mesh routes on is the call's path (`/<package.Service>/<Method>`) and its metadata, never
the message, so requests and replies are plain bytes (the reply is JSON) and any method path can be called.

The server answers *every* method path with `{"service", "pod", "method", "metadata", "peer"}`: the full path it
received and the request metadata as it arrived (header modifiers can be asserted). It never answers an error
itself, so any status other than OK that a client sees came from the sidecar (or the network), never from the
application; in particular UNIMPLEMENTED can only be Envoy's "no route" (HTTP 404).

The client makes N unary calls over one channel and tallies them by (status code name, pod that served, the
requested metadata values as the server saw them, the requested response metadata values). The same tally
comes from the library (`Caller.call`), from `call` on the command line (one job, printed as JSON) and from
`session` (jobs read from stdin, one JSON object a line, answered one JSON line each), so a pod can run
thousands of calls, and a test can probe repeatedly, without starting a process per call.

    python -m gammaxds.testing.grpc_echo serve --port 9000 --pod greeter-1 --service greeter [--host 0.0.0.0]
    python -m gammaxds.testing.grpc_echo call --target 10.96.0.10:9000 --method /echo.Greeter/SayHello -n 1000
        [--authority greeter.shop:9000] [--metadata x-canary=true] [--key x-canary] [--http1]
    python -m gammaxds.testing.grpc_echo session
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import grpc

from .http_client import Connection, describe_error, response_headers
from .jobs import answer_jobs
from .mesh import PodSession

if TYPE_CHECKING:
    from .mesh import Pod, Proc

DEFAULT_METHOD = "/echo.Greeter/SayHello"

# Client channel options, and why:
# - no HTTP proxy from the environment: a call must go exactly where it is dialled (the sidecar, or the Service
#   IP that capture redirects);
# - no retries: every call is one attempt, so a tally counts what the sidecar did to each call;
# - short reconnect backoff: a channel whose connection failed (the listener not there yet) tries again within
#   a probe's interval, instead of failing every call fast for up to two minutes (gRPC's default backoff).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)

# No SO_REUSEPORT: two servers on one address and port must fail to bind, not share the port silently.
SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (("grpc.so_reuseport", 0),)


# --- server ----------------------------------------------------------------------------------------------------


def _metadata(items: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """gRPC metadata as one dict: a key sent several times is joined with ", " in order (as HTTP joins repeated
    headers), binary (`-bin`) values are shown as hex."""
    out: dict[str, str] = {}
    for key, value in items or ():
        text = value.hex() if isinstance(value, bytes) else value
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


class EchoHandler(grpc.GenericRpcHandler):
    """Answers any method path (a generic handler, not a fixed service table): a test must see the path Envoy
    forwarded, whatever it is, and an unknown method must never look like a routing failure."""

    def __init__(self, service: str, pod: str) -> None:
        self.service_name = service
        self.pod = pod

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        method = str(handler_call_details.method)

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            body = {
                "service": self.service_name,
                "pod": self.pod,
                "method": method,
                "metadata": _metadata(context.invocation_metadata()),
                "peer": context.peer(),
            }
            return json.dumps(body, sort_keys=True).encode()

        # bytes in, bytes out: no (de)serializers
        return grpc.unary_unary_rpc_method_handler(answer)


def start_server(
    pod: str, service: str = "echo", host: str = "127.0.0.1", port: int = 0, workers: int = 8
) -> tuple[grpc.Server, int]:
    """Start an echo server on `host:port` (port 0: any free port); returns (server, bound port).

    Raises OSError when the address cannot be bound, so a caller choosing one port for several addresses can
    try another. The server speaks only HTTP/2 cleartext (h2c, as every gRPC server without TLS): a call that
    reaches it through Envoy proves Envoy spoke HTTP/2 upstream.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((EchoHandler(service, pod),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio raises on a failed bind (older versions returned 0)
        server.stop(None)
        raise OSError(f"cannot bind {host}:{port}: {exc}") from exc
    if not bound:
        server.stop(None)
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server, bound


# --- client ----------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What N calls got. `counts` is keyed by (code, pod, *metadata values, *response metadata values), where
    code is the gRPC status code name (`OK`, `UNAVAILABLE`, ...), pod is who served (None unless OK), and the
    values are those of the job's `keys` (request metadata as the server saw it) and `response_keys` (metadata
    the client received), None when absent. `first` holds the first reply (OK) or error per code."""

    counts: dict[tuple[Any, ...], int]
    first: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(self.counts.values())

    def by(self, index: int) -> dict[Any, int]:
        """Counts summed by one position of the key (0 the code, 1 the pod, 2 the first key's value, ...)."""
        out: dict[Any, int] = {}
        for key, n in self.counts.items():
            out[key[index]] = out.get(key[index], 0) + n
        return out

    @property
    def codes(self) -> dict[str, int]:
        return self.by(0)

    @property
    def pods(self) -> dict[str | None, int]:
        """Who served: pod name → calls; None counts the calls no pod answered."""
        return self.by(1)

    def answers(self) -> set[str]:
        """One word per outcome: the pod that served each OK call, the code name of each other call."""
        return {key[1] if key[0] == "OK" else key[0] for key in self.counts}

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "codes": self.codes,
            "pods": {str(k): v for k, v in self.pods.items()},
            "tally": [[list(k), n] for k, n in self.counts.items()],
            "first": self.first,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls({tuple(k): n for k, n in data["tally"]}, dict(data.get("first", {})))


def _code_name(code: grpc.StatusCode | None) -> str:
    return code.name if code is not None else "UNKNOWN"


_CODES_BY_NUMBER = {code.value[0]: code.name for code in grpc.StatusCode}

# gRPC's mapping of an HTTP status to a status code, for an HTTP answer that carries no grpc-status.
_HTTP_TO_GRPC = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}

# One outcome: (code name, the server's reply when OK, response metadata, grpc-message when not OK).
Outcome = tuple[str, dict[str, Any] | None, dict[str, str], str | None]


def http1_call(
    target: str, method: str, authority: str | None, metadata: Mapping[str, str], timeout: float
) -> Outcome:
    """One unary call framed by hand and sent over HTTP/1.1 (a new connection), so a test can show which HTTP
    version a sidecar speaks upstream whatever its client speaks: this server answers only over HTTP/2.

    The request is a gRPC request in all but the HTTP version (POST, `content-type: application/grpc`,
    `te: trailers`, one empty length-prefixed message). The code is the answer's grpc-status (in the headers:
    HTTP/1.1 carries no trailers here, and a trailers-only answer puts it there), else OK for an HTTP 200 with
    a message, else gRPC's mapping of the HTTP status."""
    host, _, port = target.rpartition(":")
    headers = {"Host": authority or target, "Content-Type": "application/grpc", "TE": "trailers", **metadata}
    try:
        with Connection(host, int(port), timeout) as conn:
            response, data = conn.request("POST", method, headers, b"\x00\x00\x00\x00\x00")
    except (OSError, http.client.HTTPException) as exc:
        return "UNAVAILABLE", None, {}, describe_error(exc)
    received = response_headers(response)  # joined as `_metadata` joins repeated gRPC metadata
    status = received.get("grpc-status")
    if response.status == 200 and status in (None, "0") and len(data) >= 5:
        size = int.from_bytes(data[1:5], "big")
        return "OK", json.loads(data[5 : 5 + size]), received, None
    if status is not None:
        code = _CODES_BY_NUMBER.get(int(status), "UNKNOWN")
    else:
        code = _HTTP_TO_GRPC.get(response.status, "UNKNOWN")
    return code, None, received, received.get("grpc-message", data.decode(errors="replace")[:200])


class Caller:
    """Unary calls over cached channels, one per (target, authority): repeated probes reuse their connection,
    as an application's long-lived channel would."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, str | None], grpc.Channel] = {}

    def channel(self, target: str, authority: str | None = None) -> grpc.Channel:
        key = (target, authority)
        if key not in self._channels:
            options = list(CHANNEL_OPTIONS)
            if authority:
                options.append(("grpc.default_authority", authority))
            self._channels[key] = grpc.insecure_channel(target, options=options)
        return self._channels[key]

    def _grpc_call(
        self, target: str, method: str, authority: str | None, metadata: Mapping[str, str], timeout: float
    ) -> Outcome:
        # No (de)serializers: bytes both ways.
        stub: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self.channel(target, authority).unary_unary(method)
        try:
            raw, call = stub.with_call(b"", timeout=timeout, metadata=tuple(metadata.items()))
        except grpc.RpcError as err:
            failed = cast(grpc.Call, err)  # a blocking call fails with an RpcError that is also its grpc.Call
            md: list[tuple[str, str | bytes]] = [
                *(failed.initial_metadata() or ()),
                *(failed.trailing_metadata() or ()),
            ]
            return _code_name(err.code()), None, _metadata(md), err.details()
        md = [*(call.initial_metadata() or ()), *(call.trailing_metadata() or ())]
        return "OK", json.loads(raw), _metadata(md), None

    def call(
        self,
        target: str,
        method: str = DEFAULT_METHOD,
        n: int = 1,
        authority: str | None = None,
        metadata: Mapping[str, str] | None = None,
        keys: Sequence[str] = (),
        response_keys: Sequence[str] = (),
        timeout: float = 5.0,
        http1: bool = False,
    ) -> Tally:
        """`n` calls of `method` at `target` (HOST:PORT) with `:authority` = `authority` (the channel's default:
        the target), tallied (see `Tally`); with `http1`, each call is sent over HTTP/1.1 (`http1_call`)."""
        counts: dict[tuple[Any, ...], int] = {}
        first: dict[str, dict[str, Any]] = {}
        one = http1_call if http1 else self._grpc_call
        for _ in range(n):
            code, reply, received, details = one(target, method, authority, metadata or {}, timeout)
            seen = reply.get("metadata", {}) if reply else {}
            if code not in first:
                first[code] = {**(reply or {"details": details}), "response_metadata": received}
            pod = reply.get("pod") if reply else None
            key = (code, pod, *(seen.get(k) for k in keys), *(received.get(k) for k in response_keys))
            counts[key] = counts.get(key, 0) + 1
        return Tally(counts, first)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> Caller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_job(caller: Caller, job: Mapping[str, Any]) -> dict[str, Any]:
    """One `call`/`session` job (the keyword arguments of `Caller.call`) → its tally as JSON."""
    try:
        tally = caller.call(
            job["target"],
            job.get("method", DEFAULT_METHOD),
            int(job.get("n", 1)),
            job.get("authority"),
            job.get("metadata") or {},
            job.get("keys") or (),
            job.get("response_keys") or (),
            float(job.get("timeout", 5.0)),
            bool(job.get("http1")),
        )
    except Exception as exc:  # a bad job is answered, so the session stays usable
        return {"error": f"{type(exc).__name__}: {exc}"}
    return tally.to_json()


# --- in a pod ----------------------------------------------------------------------------------------------------


def serve_in_pod(
    pod: Pod, service: str, port: int, name: str | None = None, wait: bool = True, timeout: float = 15.0
) -> Proc:
    """Run `grpc_echo serve` as the pod's application on all its addresses (serving as pod `name`, default the
    pod's own name); wait until it listens, unless `wait` is False (to start several pods at once, then wait
    for each with `pod.wait_listening`)."""
    argv = [
        sys.executable,
        "-m",
        "gammaxds.testing.grpc_echo",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--pod",
        name or pod.name,
        "--service",
        service,
    ]
    proc = pod.popen(argv, name=f"grpc-echo-{service}-{port}")
    if wait:
        pod.wait_listening(port, proc, timeout)
    return proc


class PodCaller(PodSession):
    """A long-lived `grpc_echo session` in a pod: each `call` is one job sent on its stdin, answered with one
    JSON line. It is one of the pod's processes, so the mesh stops it when it closes."""

    def __init__(self, pod: Pod) -> None:
        super().__init__(
            pod, [sys.executable, "-u", "-m", "gammaxds.testing.grpc_echo", "session"], "grpc session"
        )

    def call(
        self,
        target: str,
        method: str = DEFAULT_METHOD,
        n: int = 1,
        authority: str | None = None,
        metadata: Mapping[str, str] | None = None,
        keys: Sequence[str] = (),
        response_keys: Sequence[str] = (),
        timeout: float = 5.0,
        http1: bool = False,
        total_timeout: float = 120.0,
    ) -> Tally:
        """As `Caller.call`, from inside the pod; `total_timeout` bounds the whole job."""
        job = {
            "target": target,
            "method": method,
            "n": n,
            "authority": authority,
            "metadata": dict(metadata or {}),
            "keys": list(keys),
            "response_keys": list(response_keys),
            "timeout": timeout,
            "http1": http1,
        }
        out = dict(self.exchange(job, total_timeout))
        if "error" in out:
            raise RuntimeError(f"grpc session in pod {self.pod.name}: {out['error']}")
        return Tally.from_json(out)


# --- command line ------------------------------------------------------------------------------------------------


def _pairs(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--metadata takes KEY=VALUE, not {item!r}")
        out[key.lower()] = value
    return out


def _serve(args: argparse.Namespace) -> int:
    server, port = start_server(args.pod, args.service, args.host, args.port, args.workers)
    print(
        json.dumps({"serving": f"{args.host}:{port}", "pod": args.pod, "service": args.service}), flush=True
    )
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop(1).wait(2)
    return 0


def _session(_args: argparse.Namespace) -> int:
    with Caller() as caller:
        answer_jobs(lambda job: run_job(caller, job))
    return 0


def _call(args: argparse.Namespace) -> int:
    job = {
        "target": args.target,
        "method": args.method,
        "n": args.n,
        "authority": args.authority,
        "metadata": _pairs(args.metadata),
        "keys": args.key,
        "response_keys": args.response_key,
        "timeout": args.timeout,
        "http1": args.http1,
    }
    with Caller() as caller:
        out = run_job(caller, job)
    print(json.dumps(out, indent=1))
    return 1 if "error" in out else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gammaxds.testing.grpc_echo", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer every gRPC method with who served it and what it received")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--pod", required=True, help="the pod name every reply carries")
    serve.add_argument("--service", default="echo", help="the Service name every reply carries")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--workers", type=int, default=8)
    call = sub.add_parser("call", help="N calls; print a JSON tally (per pod, per gRPC status code)")
    call.add_argument("--target", required=True, help="HOST:PORT to dial")
    call.add_argument(
        "--method", default=DEFAULT_METHOD, help="the full method path, /package.Service/Method"
    )
    call.add_argument("-n", type=int, default=1)
    call.add_argument("--authority", help=":authority to send (default: the target)")
    call.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    call.add_argument(
        "--key", action="append", default=[], help="tally by this request metadata key as received"
    )
    call.add_argument(
        "--response-key", action="append", default=[], help="tally by this response metadata key"
    )
    call.add_argument("--timeout", type=float, default=5.0, help="deadline of each call, seconds")
    call.add_argument("--http1", action="store_true", help="send each call over HTTP/1.1 (framed by hand)")
    sub.add_parser("session", help="read JSON jobs from stdin, one a line; answer one JSON tally a line")
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "call": _call,
        "session": _session,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
