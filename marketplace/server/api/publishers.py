"""Publishers and API tokens.

Registration is open (anyone may create a publisher and claim a free namespace), limited per
client address so that names cannot be squatted in bulk; it answers the plaintext token exactly
once, the registry keeping only its hash. Token management needs a valid
token of the same publisher; minting a token spends one unit of the account's own token budget
(429 past it), so neither tokens nor write budgets can be farmed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from marketplace.server.api.deps import ClientAddress, CurrentPrincipal, TokenMinter, get_state
from marketplace.server.api.fields import PublisherPath, TokenIdPath
from marketplace.server.api.problems import WRITE_PROBLEMS, problem_responses
from marketplace.server.api.schemas import (
    PublisherCreate,
    PublisherOut,
    Registration,
    TokenCreate,
    TokenCreated,
)
from marketplace.server.client_address import rate_key

router = APIRouter(tags=["publishers"])


@router.post(
    "/publishers", status_code=201, response_model=Registration,
    responses=problem_responses(409, 413, 429),
)
def register(body: PublisherCreate, client: ClientAddress, request: Request) -> Registration:
    state = get_state(request)
    state.register_limiter.acquire(rate_key(client))
    publisher, token = state.registry.register_publisher(
        body.name, body.namespace, email=body.email
    )
    return Registration(publisher=publisher, token=token)


# A publisher page lists at most this many packages; the search API pages through the rest.
PUBLISHER_PACKAGES = 100


@router.get("/publishers/{publisher}", response_model=PublisherOut)
def publisher(publisher: PublisherPath, request: Request) -> PublisherOut:
    registry = get_state(request).registry
    record = registry.publisher(publisher)
    packages = registry.search(publisher=record.name, sort="rating", per_page=PUBLISHER_PACKAGES)
    return PublisherOut(**record.model_dump(), packages=packages.items)


@router.post("/tokens", status_code=201, response_model=TokenCreated, responses=WRITE_PROBLEMS)
def create_token(body: TokenCreate, principal: TokenMinter, request: Request) -> TokenCreated:
    registry = get_state(request).registry
    token: str = registry.create_token(principal, set(body.scopes))
    # The facade answers only the secret; its id and scopes are read back through it.
    issued = registry.authenticate(token)
    return TokenCreated(id=issued.token_id, token=token, scopes=sorted(issued.scopes))


@router.delete("/tokens/{token_id}", status_code=204, responses=WRITE_PROBLEMS)
def revoke_token(token_id: TokenIdPath, principal: CurrentPrincipal, request: Request) -> Response:
    get_state(request).registry.revoke_token(principal, token_id)
    return Response(status_code=204)
