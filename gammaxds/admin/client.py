"""Reading the running control plane's admin API, for the commands that show it (`status`, `describe`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class AdminUnreachable(RuntimeError):
    """One line for the user: the admin API did not answer, or answered with an error it named."""


def admin_get(address: str, path: str, query: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    """The JSON body of `GET http://ADDRESS/PATH?QUERY`. An error answer raises with the `error` the server
    gave; no answer raises with what to check."""
    url = f"http://{address}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        try:
            message = json.load(err).get("error") or err.reason
        except ValueError:
            message = err.reason
        raise AdminUnreachable(str(message)) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise AdminUnreachable(
            f"cannot reach the control plane's admin API at {address} ({reason}); is gammaxds serve running?"
            " (--admin-address)"
        ) from None
