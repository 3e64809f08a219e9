"""A stand-in for the sidecar: a TCP listener that answers each HTTP request with where capture sent it.

    python -m gammaxds.testing.original_dst HOST PORT

It listens where the sidecar would (127.0.0.1:15001 by default in `Pod.start_original_dst_echo`), prints
`listening` once bound, and answers every connection's first request, then closes it, with one JSON object:

    {"original_dst": "10.96.0.10:80", "peer": "10.244.0.3:41234", "local": "127.0.0.1:15001"}

`original_dst` is the connection's destination before the iptables REDIRECT (SO_ORIGINAL_DST), or None when
the connection was not redirected; so a test proves what capture delivers without any Envoy. IPv4 only, one
connection at a time (each bounded by a 5 s timeout). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import struct
from collections.abc import Sequence

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: the destination of a connection before NAT
CONNECTION_TIMEOUT = 5.0


def original_destination(conn: socket.socket) -> str | None:
    """`IP:PORT` the client dialled before a REDIRECT, None when no NAT applied to this connection."""
    try:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port, ip = struct.unpack("!2xH4s8x", raw)  # struct sockaddr_in: family, port, address, padding
    return f"{socket.inet_ntoa(ip)}:{port}"


def read_request_head(conn: socket.socket) -> bytes:
    """Everything up to the end of the request's headers (or what came before the client stopped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def answer(conn: socket.socket, peer: tuple[str, int]) -> None:
    """Read one request on `conn` and reply with its original destination, peer and local address (JSON)."""
    original = original_destination(conn)
    read_request_head(conn)
    local = conn.getsockname()
    body = json.dumps(
        {"original_dst": original, "peer": f"{peer[0]}:{peer[1]}", "local": f"{local[0]}:{local[1]}"}
    ).encode()
    head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def serve(host: str, port: int) -> None:
    """Listen on `host:port` and answer connections one after another, forever."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(64)
    print("listening", flush=True)
    while True:
        conn, peer = server.accept()
        # A client that goes away or is too slow is dropped; the next connection is served.
        with conn, contextlib.suppress(OSError):
            conn.settimeout(CONNECTION_TIMEOUT)
            answer(conn, peer)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gammaxds.testing.original_dst", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("host", help="the address to listen on, e.g. 127.0.0.1")
    parser.add_argument("port", type=int, help="the port to listen on, e.g. 15001")
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
