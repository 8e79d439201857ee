"""The run worker process of the embedded engine.

Started by `runs.engine.LocalEngine` through `sandbox.pool.WorkerProcess` (a fresh interpreter,
fork + exec, isolated mode, exactly the parent's `sys.path`, its own session, a lifeline pipe
that ends it when the parent goes away, however that happens). It builds one `AgentFactory`
(the same plugins and settings as the server's), answers `READY`, then serves runs one at a
time for as long as its parent wants: a `Claim` in (JSON), an `Outcome` out (JSON).
Each run executes under its correlation id (`core.context`); the worker logs like the server
(`core.logs`).

Untrusted code runs here or deeper (a sandboxed agent goes through the sandbox's own killable
pool), never in the API process; the parent kills this process when a run overruns its deadline
or is cancelled, and starts another.

`WorkerConfig.refresh` names a function (`module:attribute`) called with the factory before
each run, so installs made while the server runs reach the workers; the server passes
`marketplace.client.installed:refresh_factory`. It is given by name because the run service does
not import the marketplace.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.worker import HEADER_CAP, READY, _watch_parent

if TYPE_CHECKING:
    from core.factory import AgentFactory

BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from runs.worker import main; main(sys.argv[2:])"
)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker's factory is built from, on top of `FactorySettings.from_env()`."""

    template_dirs: list[str] = field(default_factory=list)
    sandbox_policy: str | None = None
    refresh: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


def build_factory(config: WorkerConfig) -> AgentFactory:
    from core.config import FactorySettings
    from core.factory import AgentFactory

    settings = replace(FactorySettings.from_env(), preload=[], hot_reload=False)
    if config.template_dirs:
        settings = replace(settings, template_dirs=[Path(p) for p in config.template_dirs])
    if config.sandbox_policy is not None:
        settings = replace(settings, sandbox_policy=config.sandbox_policy)  # type: ignore[arg-type]
    return AgentFactory(settings)


def _refresher(name: str | None) -> Callable[[AgentFactory], Any] | None:
    if not name:
        return None
    module, _, attr = name.partition(":")
    function: Callable[[AgentFactory], Any] = getattr(importlib.import_module(module), attr)
    return function


def main(argv: list[str]) -> None:
    """Entry point of `python -I -c BOOT sys_path conn_fd lifeline_fd config_json`."""
    conn_fd, lifeline_fd, config = argv
    serve(
        Connection(int(conn_fd)),
        Connection(int(lifeline_fd), writable=False),
        WorkerConfig.from_json(config),
    )


def serve(conn: Connection, lifeline: Connection, config: WorkerConfig) -> None:
    from core.context import acceptable, set_correlation_id
    from core.logs import configure_logging, log_format_from_env
    from runs.executor import execute
    from runs.schemas import Claim, Outcome

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(lifeline,), name="lifeline", daemon=True).start()
    try:
        configure_logging(log_format_from_env())
        factory = build_factory(config)
        refresh = _refresher(config.refresh)
    except Exception as exc:  # reported to the parent, which raises it
        conn.send_bytes(f"failed: {type(exc).__name__}: {exc}".encode()[:HEADER_CAP])
        os._exit(1)
    conn.send_bytes(READY)
    try:
        while True:
            claim = Claim.from_wire(conn.recv_bytes())
            # Log lines, sandbox requests and steps of this run carry its request's id.
            set_correlation_id(acceptable(claim.correlation_id))
            if refresh is not None:
                # A broken install must not stop the other agents from running.
                with contextlib.suppress(Exception):
                    refresh(factory)
            try:
                outcome = execute(factory, claim)
                data = outcome.to_wire()
            except Exception as exc:  # a bug of ours: the run fails, the worker lives on
                failed = Outcome.failure("failed", "internal", f"{type(exc).__name__}: {exc}")
                data = failed.to_wire()
            conn.send_bytes(data)
    except (EOFError, OSError):
        pass  # the engine closed this worker (or went away)
    os._exit(0)
