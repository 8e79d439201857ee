"""Request-scoped dependencies: the registry, the caller, the client's address, write limits.

`MarketState` is built once by the app's lifespan and hung on `app.state.market`; everything a
request needs is reached through it, never through module globals, so two apps (two tests) in one
process never share anything. Authentication reads `Authorization: Bearer <token>` only; a missing
or malformed header is an `AuthenticationError` (401), a token without the needed scope a
`PermissionDenied` (403). Write endpoints and token minting spend one unit of the caller's
*account* budget (`ratelimit.account_key`: every token of a publisher shares it, so minting
tokens does not reset it) *after* authentication, so a bad token never drains a good account.
Where a client address is needed, it is `ClientAddress` (`client_address.client_address`), never
`request.client` or a header read directly.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from marketplace.server.api.cache import ResponseCache
from marketplace.server.client_address import client_address
from marketplace.server.metrics import ServerMetrics
from marketplace.server.ratelimit import Limiter, account_key
from marketplace.server.settings import ServerSettings
from registry.db import is_sqlite
from registry.errors import AuthenticationError, PermissionDenied
from registry.schemas import Principal
from registry.service import Registry
from runs.service import RunService

if TYPE_CHECKING:
    from marketplace.server.vetting import VettingGate  # imports the sandbox: only when vetting


P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class MarketState:
    settings: ServerSettings
    registry: Registry
    metrics: ServerMetrics
    cache: ResponseCache
    publish_limiter: Limiter
    review_limiter: Limiter
    register_limiter: Limiter
    token_limiter: Limiter
    factory: Any = None  # core.factory.AgentFactory once started; read only for /metrics
    runs: RunService | None = None  # the run service, started by the lifespan
    # Admission to vetting at publish (None when the server does not vet uploads).
    vetting_gate: VettingGate | None = None


def get_state(request: Request) -> MarketState:
    state: MarketState = request.app.state.market
    return state


# Dependencies that only read the request or the app are `async def`: FastAPI runs a plain
# `def` dependency in its thread pool, a hop that costs more than the work under load.
async def _state(request: Request) -> MarketState:
    return get_state(request)


StateDep = Annotated[MarketState, Depends(_state)]


async def get_registry(request: Request) -> Registry:
    return get_state(request).registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
ClientAddress = Annotated[str, Depends(client_address)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def current_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationError("missing token: send 'Authorization: Bearer <token>'")
    return get_state(request).registry.authenticate(token)


def optional_principal(request: Request) -> Principal | None:
    token = bearer_token(request)
    return None if token is None else get_state(request).registry.authenticate(token)


async def quick_read(engine: Engine, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`read(...)`, a short read of `engine`'s database. On SQLite (a file of this machine, read
    without waiting on writers in WAL mode) it runs on the event loop: for a fraction of a
    millisecond of work, the hop to the thread pool and back costs more. A database across the
    network is read from the thread pool."""
    if is_sqlite(engine):
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)


async def _authenticated(request: Request) -> Principal:
    """`current_principal` as a dependency (every request with a token asks it)."""
    return await quick_read(get_state(request).registry.engine, current_principal, request)


async def _maybe_authenticated(request: Request) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return await _authenticated(request)


CurrentPrincipal = Annotated[Principal, Depends(_authenticated)]
OptionalPrincipal = Annotated[Principal | None, Depends(_maybe_authenticated)]


def _require(scope: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise PermissionDenied(f"this token lacks the {scope!r} scope")
        return principal

    return check


def _publish_writer(
    principal: Annotated[Principal, Depends(_require("publish"))], state: StateDep
) -> Principal:
    state.publish_limiter.acquire(account_key(principal))
    return principal


def _review_writer(
    principal: Annotated[Principal, Depends(_require("review"))], state: StateDep
) -> Principal:
    state.review_limiter.acquire(account_key(principal))
    return principal


def _token_minter(principal: CurrentPrincipal, state: StateDep) -> Principal:
    state.token_limiter.acquire(account_key(principal))
    return principal


# Scope-checked callers; the *Writer aliases (and TokenMinter) also spend the account's budget.
Publisher = Annotated[Principal, Depends(_require("publish"))]
PublishWriter = Annotated[Principal, Depends(_publish_writer)]
ReviewWriter = Annotated[Principal, Depends(_review_writer)]
TokenMinter = Annotated[Principal, Depends(_token_minter)]
# Runs need the `run` scope; their own quotas (runs.store) stand in for a write budget.
Runner = Annotated[Principal, Depends(_require("run"))]


async def get_runs(request: Request) -> RunService:
    service = get_state(request).runs
    assert service is not None, "the lifespan starts the run service"
    return service


RunsDep = Annotated[RunService, Depends(get_runs)]
