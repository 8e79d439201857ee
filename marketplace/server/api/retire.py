"""Graded retirement (deprecate, revoke), the signed revocation list, and `whoami`.

A release's publisher deprecates (and undeprecates) and revokes its own releases with a token of
scope `publish`; a token with scope `admin` may revoke any release, and the registry then signs
the statement with its own key. A publisher's revocation carries the statement's signature by
one of their keys (`agentfactory revoke` makes it; `registry.retire.statement_bytes` says what
is signed). A revocation cannot be undone.

The server is the registry: after every revocation or deprecation it writes the fresh signed
list into its own data directory, exactly where a client of that home caches it, and refreshes
its agent factory at once (`marketplace.client.retirement`, `installed.refresh_factory`), so a
revoked community agent is unloaded before this request answers; run workers see the new list
on their next run. Other clients fetch `GET /revocations` and cache it with its signature.
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from marketplace.server.api.deps import CurrentPrincipal, MarketState, PublishWriter, get_state
from marketplace.server.api.fields import (
    FULL_NAME,
    KEY_ID,
    NamePath,
    NamespacePath,
    VersionPath,
    matching,
)
from marketplace.server.api.problems import WRITE_PROBLEMS, problem_responses
from marketplace.server.api.schemas import ReleaseOut, _Body
from registry.names import normalize_name
from registry.retire import MAX_REASON
from registry.schemas import SignedRevocationList, WhoAmI

log = logging.getLogger("agentfactory.marketplace")
router = APIRouter(tags=["retirement"])

# One Ed25519 signature (64 bytes) in standard padded base64.
STATEMENT_SIGNATURE = matching(
    "[A-Za-z0-9+/]{85}[AQgw]==", "a signature is 64 Ed25519 bytes in standard padded base64"
)
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON, description="Why, for users.")]


class DeprecateRequest(_Body):
    reason: Reason
    successor: Annotated[str, FULL_NAME] | None = Field(
        default=None, description="The package users should move to."
    )


class RevokeRequest(_Body):
    reason: Reason
    signature: Annotated[str, STATEMENT_SIGNATURE] | None = Field(
        default=None,
        description="The publisher's Ed25519 signature of the revocation statement; an admin "
                    "may leave it out, and the registry signs with its own key.",
    )
    key_id: Annotated[str, KEY_ID] | None = Field(
        default=None, description="The publisher key that made `signature`."
    )


VERSION_PATH = "/packages/{namespace}/{name}/versions/{version}"


@router.post(f"{VERSION_PATH}/deprecate", response_model=ReleaseOut, responses=WRITE_PROBLEMS)
async def deprecate(
    namespace: NamespacePath, name: NamePath, version: VersionPath, body: DeprecateRequest,
    principal: PublishWriter, request: Request,
) -> ReleaseOut:
    """Deprecate a release: it still installs, with a warning naming the reason and successor."""
    state = get_state(request)
    release = await run_in_threadpool(
        state.registry.deprecate, principal, f"{namespace}/{name}", version, body.reason,
        body.successor,
    )
    await run_in_threadpool(publish_retirements, state)
    state.cache.invalidate(normalize_name(release.name))
    return ReleaseOut.of(release)


@router.delete(f"{VERSION_PATH}/deprecate", response_model=ReleaseOut, responses=WRITE_PROBLEMS)
async def undeprecate(
    namespace: NamespacePath, name: NamePath, version: VersionPath, principal: PublishWriter,
    request: Request,
) -> ReleaseOut:
    """Take a deprecation back."""
    state = get_state(request)
    release = await run_in_threadpool(
        state.registry.deprecate, principal, f"{namespace}/{name}", version, None, None
    )
    await run_in_threadpool(publish_retirements, state)
    state.cache.invalidate(normalize_name(release.name))
    return ReleaseOut.of(release)


@router.post(f"{VERSION_PATH}/revoke", response_model=ReleaseOut, responses=WRITE_PROBLEMS)
async def revoke(
    namespace: NamespacePath, name: NamePath, version: VersionPath, body: RevokeRequest,
    principal: PublishWriter, request: Request,
) -> ReleaseOut:
    """Revoke a release for good: it must not be installed or run anywhere."""
    state = get_state(request)
    signature = base64.b64decode(body.signature) if body.signature else None
    release = await run_in_threadpool(
        state.registry.revoke, principal, f"{namespace}/{name}", version, body.reason,
        signature, body.key_id,
    )
    await run_in_threadpool(publish_retirements, state)
    state.cache.invalidate(normalize_name(release.name))
    return ReleaseOut.of(release)


@router.get("/revocations", response_model=SignedRevocationList)
def revocations(request: Request) -> SignedRevocationList:
    """Every deprecated, yanked and revoked release, signed as a whole by the registry's key."""
    result: SignedRevocationList = get_state(request).registry.revocations()
    return result


@router.get("/whoami", response_model=WhoAmI, responses=problem_responses(401))
def whoami(principal: CurrentPrincipal, request: Request) -> WhoAmI:
    """The account and scopes of the token sent."""
    result: WhoAmI = get_state(request).registry.whoami(principal)
    return result


def publish_retirements(state: MarketState) -> None:
    """Write the fresh signed list into the server's home and refresh its factory (the
    in-process path by which a revocation reaches running agents; see the module docstring).
    A failure here is logged, never turned into a failed revocation: it is already stored."""
    from marketplace.client.installed import refresh_factory
    from marketplace.client.retirement import RevocationCache

    try:
        RevocationCache(state.settings.home).store(state.registry.revocations())
        if state.factory is not None:
            refresh_factory(state.factory)
    except Exception:
        log.exception("could not publish the revocation list to the server's own factory")
