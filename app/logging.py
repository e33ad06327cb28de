"""Structured logs: one JSON object per line, each carrying the request id."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from app.request_id import current_request_id

# Record attributes that are not fields of ours (uvicorn adds `color_message`, with terminal colours).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id.get(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "request_id"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def uvicorn_log_config(level: str, json_lines: bool) -> dict[str, object]:
    """uvicorn's own lines (start-up, shutdown, errors) in the same format as ours."""
    formatter = {"()": "app.logging.JsonFormatter"} if json_lines else {
        "format": "%(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"tandem": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "tandem", "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False}},
    }


def configure_logging(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
