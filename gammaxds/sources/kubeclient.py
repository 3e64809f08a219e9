"""Connecting to the Kubernetes API, reading raw JSON from `kubernetes_asyncio` calls, and retry pacing.

The sources work on plain camelCase dicts (what `parse_object` reads and what status patches write), so every
call is made with `_preload_content=False` and decoded here, which also checks the HTTP status that
`kubernetes_asyncio` leaves unchecked for such calls.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable
from typing import Any, cast

from aiohttp import ClientResponse
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException


async def api_client(kubeconfig: str | None = None, *, in_cluster: bool = False) -> client.ApiClient:
    """An ApiClient for the pod's service account (`in_cluster`) or a kubeconfig (default ~/.kube/config)."""
    configuration = client.Configuration()
    if in_cluster:
        # kubernetes_asyncio leaves this function unannotated.
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration=configuration)


def status_error(code: int, body: Any, reason: str = "") -> ApiException:
    """An ApiException for a failed call, carrying the API's Status object as its body."""
    if isinstance(body, dict):
        reason = reason or str(body.get("reason") or "")
        message = str(body.get("message") or "")
        if message:
            reason = f"{reason}: {message}" if reason else message
        body = json.dumps(body)
    err = ApiException(status=code, reason=reason)
    err.body = body
    return err


async def check(response: ClientResponse) -> ClientResponse:
    """The response when its status is 2xx; otherwise its Status body raised as an ApiException."""
    if 200 <= response.status < 300:
        return response
    try:
        body: Any = json.loads(await response.read())
    except ValueError:
        body = None
    finally:
        response.release()
    raise status_error(response.status, body, response.reason or "")


def raw_response(result: object) -> ClientResponse:
    """What a call made with `_preload_content=False` returned: aiohttp's response, undecoded. The
    annotations of `kubernetes_asyncio` name the decoded model (V1Lease, ...) whatever that argument says."""
    return cast(ClientResponse, result)


async def call_json(call: Awaitable[object]) -> dict[str, Any]:
    """Await an API call made with `_preload_content=False` and return its JSON body."""
    response = await check(raw_response(await call))
    try:
        data = json.loads(await response.read())
    finally:
        response.release()
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object from the API, got {type(data).__name__}")
    return data


class Backoff:
    """Exponential retry delays with full-range jitter, capped: 0.5 s, 1 s, 2 s, ... up to `cap`.

    Jitter keeps a fleet of replicas that lost the API server together from reconnecting in lockstep.
    """

    def __init__(self, initial: float = 0.5, cap: float = 30.0, factor: float = 2.0) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self._attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * self.factor**self._attempt)
        self._attempt += 1
        return random.uniform(base / 2, base)

    def reset(self) -> None:
        self._attempt = 0
