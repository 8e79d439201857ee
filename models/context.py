"""Who is calling, for code that sits between a caller and a prompt agent.

A run executor (or the CLI) does not call the gateway itself: it calls `agent.process(task)`,
and the prompt agent calls the gateway. The caller says who pays and where tokens and usage go
by setting these context variables around `process` (`with calling(...)`); the prompt agent
reads them. Context variables follow threads started with `contextvars.copy_context` and asyncio
tasks, and never leak between two runs in one process.

- `CALL_CONTEXT`: the `CallContext` to start from (account, run id, `on_token`, `on_usage`);
  the prompt agent adds its own name, declared model and DLP policy;
- `GATEWAY`: the gateway to use; unset, a local one (`ModelGateway.local()`: the deployment's
  configuration and `$AGENTFACTORY_HOME/usage.db`) is built on first use and kept while the
  configuration file (its path and modification time) and the home stay the same.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from models.types import CallContext

if TYPE_CHECKING:
    from models.gateway import ModelGateway

CALL_CONTEXT: ContextVar[CallContext | None] = ContextVar("agentfactory_call_context",
                                                          default=None)
GATEWAY: ContextVar[ModelGateway | None] = ContextVar("agentfactory_gateway", default=None)

_local: dict[tuple[str, int, str], ModelGateway] = {}
_lock = threading.Lock()


@contextmanager
def calling(
    context: CallContext | None = None, gateway: ModelGateway | None = None
) -> Iterator[None]:
    """Run the body with `context` and/or `gateway` as the current ones."""
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    if context is not None:
        tokens.append((CALL_CONTEXT, CALL_CONTEXT.set(context)))
    if gateway is not None:
        tokens.append((GATEWAY, GATEWAY.set(gateway)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_gateway() -> ModelGateway:
    """The gateway set by the caller, else this process's local one."""
    gateway = GATEWAY.get()
    if gateway is not None:
        return gateway
    from core.paths import agentfactory_home
    from models.config import config_location

    path, _table = config_location()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    key = (str(path), stamp, str(agentfactory_home()))
    with _lock:
        gateway = _local.get(key)
        if gateway is None:
            from models.gateway import ModelGateway

            _local.clear()
            gateway = _local[key] = ModelGateway.local()
        return gateway


def current_context() -> CallContext:
    return CALL_CONTEXT.get() or CallContext()
