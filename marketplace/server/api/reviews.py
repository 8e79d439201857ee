"""Reviews and ratings: one review per user per package (a new one replaces the old), the
package owner's reply, abuse flags, and the rating summary.

A review is about one version (`version`, defaulting to the newest one its author downloaded)
and is verified when its author's account downloaded that version with its token; only verified
reviews make the rating, unverified ones are listed apart (`?verified=false`). See
`registry.reviews` and docs/trust.md.

Every write here spends the caller's review budget and invalidates the package's cached
responses, since the rating shown on the package page moves with each review.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from marketplace.server.api.deps import MarketState, ReviewWriter, get_state
from marketplace.server.api.fields import NamePath, NamespacePath
from marketplace.server.api.packages import MAX_PAGE, cached_json
from marketplace.server.api.problems import WRITE_PROBLEMS
from marketplace.server.api.schemas import FlagRequest, ReplyRequest, ReviewUpsert
from registry.names import normalize_name
from registry.schemas import RatingSummary, ReviewPage, ReviewPublic

router = APIRouter(tags=["reviews"])
# Review ids are SQLite/PostgreSQL 64-bit integers; a larger one would overflow the driver.
ReviewId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/packages/{namespace}/{name}/reviews", response_model=ReviewPage)
def list_reviews(
    namespace: NamespacePath,
    name: NamePath,
    request: Request,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    verified: Annotated[
        bool | None, Query(description="Only verified (true) or unverified (false) reviews.")
    ] = None,
) -> ReviewPage:
    result: ReviewPage = get_state(request).registry.reviews(
        f"{namespace}/{name}", page=page, per_page=per_page, verified=verified
    )
    return result


@router.put(
    "/packages/{namespace}/{name}/reviews", response_model=ReviewPublic,
    responses=WRITE_PROBLEMS,
)
def put_review(
    namespace: NamespacePath,
    name: NamePath,
    body: ReviewUpsert,
    principal: ReviewWriter,
    request: Request,
) -> ReviewPublic:
    state = get_state(request)
    full = f"{namespace}/{name}"
    review: ReviewPublic = state.registry.rate(
        principal, full, body.stars, title=body.title, body=body.body, version=body.version
    )
    state.cache.invalidate(normalize_name(full))
    return review


@router.delete(
    "/packages/{namespace}/{name}/reviews", status_code=204, responses=WRITE_PROBLEMS
)
def delete_review(
    namespace: NamespacePath, name: NamePath, principal: ReviewWriter, request: Request
) -> Response:
    state = get_state(request)
    full = f"{namespace}/{name}"
    state.registry.delete_review(principal, full)
    state.cache.invalidate(normalize_name(full))
    return Response(status_code=204)


@router.get("/packages/{namespace}/{name}/rating", response_model=RatingSummary)
async def rating(namespace: NamespacePath, name: NamePath, request: Request) -> Response:
    registry = get_state(request).registry
    return await cached_json(request, "rating", f"{namespace}/{name}", registry.rating)


@router.post(
    "/reviews/{review_id}/reply", response_model=ReviewPublic, responses=WRITE_PROBLEMS
)
async def reply(
    review_id: ReviewId, body: ReplyRequest, principal: ReviewWriter, request: Request
) -> ReviewPublic:
    state = get_state(request)
    return await _changed_review(state, state.registry.reply, principal, review_id, body.text)


@router.post(
    "/reviews/{review_id}/flag", response_model=ReviewPublic, responses=WRITE_PROBLEMS
)
async def flag(
    review_id: ReviewId, body: FlagRequest, principal: ReviewWriter, request: Request
) -> ReviewPublic:
    state = get_state(request)
    return await _changed_review(state, state.registry.flag, principal, review_id, body.reason)


async def _changed_review(
    state: MarketState, write: Callable[..., ReviewPublic], *args: Any
) -> ReviewPublic:
    """Run a registry write on a review in a worker thread, then drop its package's cache."""
    review = await run_in_threadpool(write, *args)
    state.cache.invalidate(normalize_name(review.package))
    return review
