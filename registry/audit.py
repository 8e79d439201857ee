"""The audit trail: who did what, to which object, when, how it ended, under which correlation id.

Writing. `record(session, ...)` adds one `AuditEvent` to the caller's session, so the event and
the write it describes commit together or not at all. A refused or failed write has rolled its
transaction back: `record_refusal(engine, exc, ...)` then writes its event alone, in a
transaction of its own, with the outcome `refused:<ErrorClass>` (a deliberate refusal, an
`AgentFactoryError`) or `failed:<ExceptionClass>` (anything else); if even that cannot be written
the refusal is logged and the original error goes on unchanged.

What is stored (and what never is): the actor's account name and id (or `anonymous`, `system`),
the action (`ACTIONS`), the object's type and id (names, versions, run ids, key and token ids:
never a token, a session id, a signature or a secret), the outcome, the correlation id (the
caller's, `core.context`, unless given) and a small `detail` object. `detail` keeps at most
`DETAIL_KEYS` keys of scalar values (strings cut to `DETAIL_VALUE` characters), drops any key
that names a secret (`token`, `secret`, `password`, `signature`...), and is at most
`DETAIL_BYTES` of JSON. An error's message is never stored, only its class: messages quote the
refused input, which may be exactly what must not be kept (a secret a scan found).

Append-only: this module has no update or delete path, and neither has any other
(`tests/registry/test_audit.py` greps for one); the database refuses both with triggers.

Reading. `events(session, viewer, query)`: an admin (a token with the `admin` scope) reads every
event; anyone else the events they did (`actor_id`) and the events on their objects
(`owner_id`: their packages, runs, keys, tokens, account). Newest first, by page.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.context import correlation_id
from core.errors import AgentFactoryError
from registry.db import write_session
from registry.models import AuditEvent, Publisher, utcnow
from registry.schemas import Principal

log = logging.getLogger("agentfactory.audit")

ACTIONS = frozenset({
    "account.register", "namespace.claim",
    "token.create", "token.revoke",
    "key.add", "key.rotate", "key.revoke",
    "session.sign_in", "session.sign_out",
    "package.publish", "release.yank", "release.unyank", "release.download",
    "review.write", "review.delete", "review.reply", "review.flag",
    "run.submit", "run.start", "run.finish", "run.cancel", "step.finish",
})
OBJECT_TYPES = frozenset({
    "account", "namespace", "token", "key", "session", "release", "review", "run", "step",
})
DETAIL_KEYS = 16
DETAIL_VALUE = 200
DETAIL_BYTES = 2048
_SECRET_WORDS = ("token", "secret", "password", "signature", "credential", "cookie", "private")
_MAX_OBJECT_ID = 200


@dataclass(frozen=True)
class Actor:
    """Who acted: an account (its name and id; an empty name is read from the database when the
    event is written), or `anonymous` / `system` (no id)."""

    name: str
    publisher_id: int | None = None


SYSTEM = Actor("system")
ANONYMOUS = Actor("anonymous")


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    outcome: str
    correlation_id: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[AuditEventPublic]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class AuditQuery:
    """Filters of `events`; None means any. `object` matches an object id exactly or as the
    prefix before `@` or `/` (`acme/echo` matches `acme/echo@1.0.0`, a run id its steps)."""

    action: str | None = None
    object: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    per_page: int = 50


# ----------------------------------------------------------------------------------- writing


def actor_of(who: Principal | Actor) -> Actor:
    if isinstance(who, Actor):
        return who
    return Actor(who.name, who.publisher_id)


def account(session: Session, publisher_id: int) -> Actor:
    """The account `publisher_id` as an actor (its name read from the database)."""
    row = session.get(Publisher, publisher_id)
    return Actor(row.name if row is not None else f"#{publisher_id}", publisher_id)


def outcome_of(exc: BaseException) -> str:
    kind = "refused" if isinstance(exc, AgentFactoryError) else "failed"
    return f"{kind}:{type(exc).__name__}"[:80]


def record(
    session: Session,
    action: str,
    actor: Principal | Actor,
    object_type: str,
    object_id: str,
    *,
    outcome: str = "ok",
    owner_id: int | None = None,
    detail: dict[str, Any] | None = None,
    correlation: str | None = None,
    at: datetime | None = None,
) -> None:
    """Add one event to `session`'s transaction (see the module docstring)."""
    assert action in ACTIONS, action
    assert object_type in OBJECT_TYPES, object_type
    who = actor_of(actor)
    if not who.name and who.publisher_id is not None:
        who = account(session, who.publisher_id)
    session.add(AuditEvent(
        at=at or utcnow(), actor=who.name[:64], actor_id=who.publisher_id, action=action,
        object_type=object_type, object_id=object_id[:_MAX_OBJECT_ID], owner_id=owner_id,
        outcome=outcome[:80], correlation_id=correlation or correlation_id(),
        detail_json=bounded_detail(detail),
    ))


def record_refusal(
    engine: Engine,
    exc: BaseException,
    action: str,
    actor: Principal | Actor,
    object_type: str,
    object_id: str,
    *,
    owner_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write the event of a write that `exc` refused, in a transaction of its own."""
    try:
        with write_session(engine) as s:
            record(
                s, action, actor, object_type, object_id, outcome=outcome_of(exc),
                owner_id=owner_id, detail=detail,
            )
    except Exception as failure:  # the refusal itself must reach the caller unchanged
        log.warning("audit event %s %s not written: %s", action, outcome_of(exc), failure)


def bounded_detail(detail: dict[str, Any] | None) -> str:
    """`detail` as compact JSON within the limits of the module docstring."""
    kept: dict[str, Any] = {}
    for key, value in (detail or {}).items():
        if len(kept) == DETAIL_KEYS:
            break
        name = str(key)[:32]
        if any(word in name.lower() for word in _SECRET_WORDS):
            continue
        if isinstance(value, str):
            value = value[:DETAIL_VALUE]
        elif value is not None and not isinstance(value, bool | int | float):
            value = str(value)[:DETAIL_VALUE]
        kept[name] = value
    text = json.dumps(kept, separators=(",", ":"), allow_nan=False, default=str)
    while len(text) > DETAIL_BYTES and kept:
        kept.pop(next(reversed(kept)))
        text = json.dumps(kept, separators=(",", ":"), allow_nan=False, default=str)
    return text


# ----------------------------------------------------------------------------------- reading


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def events(session: Session, viewer: Principal, query: AuditQuery) -> AuditPage:
    """The events `viewer` may read that match `query`, newest first."""
    where: list[Any] = []
    if "admin" not in viewer.scopes:
        where.append(or_(
            col(AuditEvent.actor_id) == viewer.publisher_id,
            col(AuditEvent.owner_id) == viewer.publisher_id,
        ))
    if query.action is not None:
        where.append(col(AuditEvent.action) == query.action)
    if query.object is not None:
        prefix = _escape_like(query.object)
        where.append(or_(
            col(AuditEvent.object_id) == query.object,
            col(AuditEvent.object_id).like(prefix + "@%", escape="\\"),
            col(AuditEvent.object_id).like(prefix + "/%", escape="\\"),
        ))
    if query.correlation_id is not None:
        where.append(col(AuditEvent.correlation_id) == query.correlation_id)
    if query.since is not None:
        where.append(col(AuditEvent.at) >= _aware(query.since))
    if query.until is not None:
        where.append(col(AuditEvent.at) < _aware(query.until))
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*where)).one()
    rows = session.exec(
        select(AuditEvent).where(*where).order_by(col(AuditEvent.id).desc())
        .offset((query.page - 1) * query.per_page).limit(query.per_page)
    ).all()
    return AuditPage(
        items=[_public(row) for row in rows], total=total, page=query.page,
        per_page=query.per_page,
    )


def _public(row: AuditEvent) -> AuditEventPublic:
    assert row.id is not None
    return AuditEventPublic(
        id=row.id, at=_aware(row.at), actor=row.actor, action=row.action,
        object_type=row.object_type, object_id=row.object_id, outcome=row.outcome,
        correlation_id=row.correlation_id, detail=json.loads(row.detail_json),
    )
