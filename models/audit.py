"""Audit events of the model layer, behind a small sink protocol.

Every model call emits one `model.call` event (outcome `ok` or the error's code) and every DLP
action one `model.dlp` event (outcome `masked` or `refused`, with the kinds found). An event
names who (account, agent, run), what (model) and the figures; it never holds prompt or output
text, a detected value or a key. The project's audit table plugs in as another `AuditSink`;
until then `LoggingAuditSink` writes one structured JSON log line per event.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

LOGGER = "agentfactory.audit"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str  # "model.call" | "model.dlp"
    outcome: str
    account: str
    agent: str
    run_id: str | None
    model: str
    detail: dict[str, Any] = field(default_factory=dict)  # figures and kinds, never values


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...


class LoggingAuditSink:
    """Each event as one JSON line on the `agentfactory.audit` logger (INFO)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER)

    def emit(self, event: AuditEvent) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(json.dumps(asdict(event), sort_keys=True, separators=(",", ":")))


class MemoryAuditSink:
    """Keeps the events in a list (tests, and a caller that forwards them elsewhere)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)
