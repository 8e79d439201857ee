"""The correlation id of the work in progress: one id that ties a request to everything it causes.

A request's id comes from its `X-Request-ID` header when that is acceptable, else it is made
here; the server returns it in the same header, writes it on every audit event and run, and each
process that carries the work on (a run worker, a sandbox worker) sets it again from what it was
handed. Log lines read it through `core.logs`.

Invariants:
- An accepted id is 1 to `MAX_LENGTH` visible ASCII characters (`!` to `~`): no spaces, control
  characters (so no CR/LF header injection), nor anything outside ASCII. Anything else is never
  echoed or stored: it is replaced by a fresh id (32 lowercase hex digits, a uuid4).
- The id lives in a `ContextVar`: each asyncio task and each thread started with a copied
  context sees its own, so concurrent requests never mix their ids.
- Importing this module imports nothing beyond the standard library (every command imports it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "X-Request-ID"
ENV = "AGENTFACTORY_REQUEST_ID"
"""The CLI sends this id on each request when set (so a script can follow its own work)."""
MAX_LENGTH = 128

_ACCEPTABLE = re.compile(rf"[!-~]{{1,{MAX_LENGTH}}}")
_CURRENT: ContextVar[str | None] = ContextVar("agentfactory_correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def acceptable(value: str | bytes | None) -> str | None:
    """`value` as a correlation id when it may be one (see the module docstring); else None."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if value is None or _ACCEPTABLE.fullmatch(value) is None:
        return None
    return value


def accept(value: str | bytes | None) -> str:
    """`value` when acceptable, else a fresh id."""
    return acceptable(value) or new_correlation_id()


def correlation_id() -> str | None:
    """The id of the work this code runs for; None outside any request or run."""
    return _CURRENT.get()


def set_correlation_id(value: str | None) -> None:
    """Make `value` the current id for the rest of this context (a worker's task loop)."""
    _CURRENT.set(value)


@contextmanager
def correlated(value: str | None) -> Iterator[str | None]:
    """The current id is `value` inside the block, and what it was after it."""
    token = _CURRENT.set(value)
    try:
        yield value
    finally:
        _CURRENT.reset(token)
