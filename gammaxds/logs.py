"""Where `gammaxds serve` logs go and in what form: `--log-format text` (the default: one readable line per
event) or `--log-format json` (one JSON object per line, for a log pipeline: `jq`, Loki, Elasticsearch).

A JSON line carries `time` (RFC 3339, UTC, milliseconds), `level`, `logger` and `message`, then the event's
own fields, which the code attaches to each record it logs with `extra=`: `event` names what happened
(`stream.connect`, `stream.disconnect`, `push`, `ack`, `nack`, `world`, `leader`, ...) and the rest says to
whom and what (`node`, `namespace`, `type`, `version`, `resources`, `error`, ...). A text line shows the same
facts in its message, so neither format is missing anything the other has.

The JSON formatter is python-json-logger's (`pythonjsonlogger.json.JsonFormatter`): a small, maintained
library without dependencies, whose whole purpose is this. It puts a record's `extra` fields at the top level
without a list of their names (a field added to an event tomorrow needs no change here), keeps the
standard record attributes out, and encodes what the standard `json` module refuses (a traceback as text,
anything else by `str`) instead of losing the line. A hand-written `logging.Formatter` would repeat each of
those.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter  # imported only when asked for: the CLI starts faster

    class Formatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            return _rfc3339(record.created)

    return Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's records at `level` and above to `stream` (stderr), as `fmt` says. Replaces any
    handler set before, so calling it twice (tests) does not print each line twice."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
