"""Log lines that carry the correlation id: JSON for machines, text for people.

`logging_config(format, level)` is a `logging.config.dictConfig` document: one stderr handler on
the root logger, uvicorn's loggers sent through it, and a filter that stamps every record with
`correlation_id` (the id of the request or run being served, `core.context`; null outside any).
`serve` hands it to uvicorn; `agentfactory worker` and the run worker processes apply it with
`configure_logging`. The format comes from `AGENTFACTORY_LOG_FORMAT` (`json`, the default, or
`text`): JSON lines are one object each, with `timestamp`, `level`, `logger`, `message` and
`correlation_id` (and `exc_info` for a traceback), formatted by `python-json-logger`.

Invariants: a record always has a `correlation_id` attribute once it passed the filter, so a
format that names it never fails; importing this module imports only the standard library
(`python-json-logger` is loaded by the configuration that uses it).
"""

from __future__ import annotations

import logging
import logging.config
import os
from typing import Any, Literal

from core.context import correlation_id
from core.errors import AgentFactoryError

LogFormat = Literal["json", "text"]
FORMATS: tuple[LogFormat, ...] = ("json", "text")
ENV = "AGENTFACTORY_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "correlation_id"]
JSON_NAMES = {"asctime": "timestamp", "levelname": "level", "name": "logger"}


class BadLogFormat(AgentFactoryError):
    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(f"{ENV} must be one of {', '.join(FORMATS)}, not {value!r}")


class CorrelationFilter(logging.Filter):
    """Stamps each record with the current correlation id (keeps one a record already has)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id()
        return True


def log_format_from_env() -> LogFormat:
    value = os.environ.get(ENV, "json").strip().lower() or "json"
    if value not in FORMATS:
        raise BadLogFormat(value)
    return value


def logging_config(log_format: LogFormat = "json", level: str = "INFO") -> dict[str, Any]:
    """The `dictConfig` document for `log_format` at `level` (see the module docstring)."""
    level = level.upper()
    formatter: dict[str, Any]
    if log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": JSON_NAMES,
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"correlation": {"()": CorrelationFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["correlation"],
            }
        },
        "loggers": {
            "uvicorn": {**through_root, "level": level},
            "uvicorn.error": {**through_root, "level": level},
            "uvicorn.access": {**through_root, "level": level},
        },
        "root": {"handlers": ["default"], "level": level},
    }


def configure_logging(log_format: LogFormat = "json", level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(log_format, level))
