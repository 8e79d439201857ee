"""The audit trail: `GET /api/v1/audit`.

Any valid token reads the events its account may see (`registry.audit.events`): the events it
did and the events on its objects; a token with the `admin` scope reads every event. Filters:
`action` (one of `registry.audit.ACTIONS`), `object` (an object id, or the prefix before its `@`
or `/`), `correlation_id`, `since` / `until` (timestamps; without a zone, UTC), then `page` and
`per_page`. Each constraint is declared in the OpenAPI document and enforced at the edge (422),
so a hostile filter (a NUL byte, 10 KB, a year past what a timestamp can hold) never reaches the
database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from core.context import MAX_LENGTH
from marketplace.server.api.deps import CurrentPrincipal, RegistryDep
from marketplace.server.api.problems import problem_responses
from registry.audit import ACTIONS, AuditPage, AuditQuery
from registry.errors import InvalidQuery

router = APIRouter(tags=["audit"])

ACTION_PATTERN = "^(" + "|".join(re.escape(a) for a in sorted(ACTIONS)) + ")$"
VISIBLE_ASCII = "[!-~]"
MAX_PAGE = 10_000


def _utc(moment: datetime | None, field: str) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise InvalidQuery(field, moment.isoformat(), "out of range") from None


@router.get("/audit", response_model=AuditPage, responses=problem_responses(401))
def list_audit_events(
    principal: CurrentPrincipal,
    registry: RegistryDep,
    action: Annotated[
        str | None, Query(pattern=ACTION_PATTERN, max_length=32, description="An action.")
    ] = None,
    object: Annotated[
        str | None,
        Query(
            pattern=f"^{VISIBLE_ASCII}+$", max_length=200,
            description="An object id (`acme/echo@1.0.0`, a run id), or the part before its "
            "`@` or `/` (`acme/echo`: every release and review of the package).",
        ),
    ] = None,
    correlation_id: Annotated[
        str | None, Query(pattern=f"^{VISIBLE_ASCII}+$", max_length=MAX_LENGTH)
    ] = None,
    since: Annotated[datetime | None, Query(description="Events at or after (UTC).")] = None,
    until: Annotated[datetime | None, Query(description="Events before (UTC).")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Audit events the caller may read, newest first."""
    query = AuditQuery(
        action=action, object=object, correlation_id=correlation_id,
        since=_utc(since, "since"), until=_utc(until, "until"), page=page, per_page=per_page,
    )
    return registry.audit_events(principal, query)
