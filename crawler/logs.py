"""Logging: where lines go and in which shape, and the one line each fetch ends in.

Text (the default) is for people and journald; `--log-format json` writes one JSON object
per line (time, level, logger, message, and the fields a call gave with ``extra=``, such as
source, url, status and outcome) for log shippers, which then need no regular expression.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from crawler.types import CrawlOutcome

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ensure_ascii=False: source names are Chinese, and journald and jq read UTF-8.
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged, not when logging was set up:
    a program that swaps it (pytest capturing a `main()` call, a daemon redirecting it)
    would otherwise leave the handler writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(log_format: str, *, verbose: bool,
              terminal: logging.Handler | None = None) -> None:
    """Send every log line to standard error. ``terminal``: the handler for text on a
    terminal (the CLI's rich one, which prints above a progress bar instead of breaking
    it); JSON is never decorated, since whatever reads it is not a person."""
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if log_format == "json":
        handler = _StandardError()
        handler.setFormatter(JSONFormatter())
    elif terminal is not None:
        handler = terminal
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _StandardError()
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Python's warnings too, or they would be the one unformatted line in a JSON log.
    logging.captureWarnings(True)
    # Their INFO lines are one per request; ours already say what each fetch came to.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def log_outcome(log: logging.Logger, outcome: CrawlOutcome) -> None:
    """The one line a source's crawl ends in: INFO, or WARNING for an error (whose message
    is the one stored, kind first: ``http_status: HTTP 404 Not Found``)."""
    fields: dict[str, Any] = {
        "source": outcome.source, "url": outcome.url, "status": outcome.status,
        "outcome": outcome.outcome, "seconds": round(outcome.seconds, 3),
    }
    where = f"{outcome.source} <{outcome.url}>"
    took = f"{outcome.seconds:.2f} s"
    if outcome.error is not None:
        fields["error"] = outcome.error
        log.warning("%s: %s (%s)", where, outcome.error, took, extra=fields)
        return
    fields.update(new=outcome.new, updated=outcome.updated, unchanged=outcome.unchanged,
                  merged=outcome.merged, bytes=outcome.body_bytes)
    if outcome.not_modified:
        what = "not modified" if outcome.status == 304 else "the same body as last time"
        log.info("%s: HTTP %s, %s (%s)", where, outcome.status, what, took, extra=fields)
        return
    merged = f" ({outcome.merged} already stored)" if outcome.merged else ""
    log.info("%s: HTTP %s, %d new%s, %d updated, %d unchanged (%s)", where, outcome.status,
             outcome.new, merged, outcome.updated, outcome.unchanged, took, extra=fields)
