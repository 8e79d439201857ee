"""Publishers, namespaces, API tokens and signing keys.

Tokens: only the sha256 of a token is stored, so a database leak does not leak credentials;
the plaintext is returned once. A token carries scopes (publish, review, run, admin) and can be
revoked. Keys: a publisher's first key is accepted as is (trust on first use, bound to the
token that registers it); every later key needs a rotation statement signed by one of the
publisher's current (unrevoked) keys. A revoked key verifies no new upload, but releases it
signed keep its key id, and the key row is kept so they can still be checked.

Web sessions: signing in with a token opens a server-side session whose random 256-bit id goes
to the browser and whose sha256 alone is stored (like tokens). A session is valid until its
expiry, its deletion (sign-out) or its token's revocation, whichever comes first; expired rows
are swept when a session is opened, and an account keeps at most `MAX_WEB_SESSIONS` (opening
one more drops its oldest), so sign-ins cannot grow the table without bound.

Namespaces are first come, first served. A namespace one edit away from a namespace another
publisher holds is refused at claim (`names.check_namespace_lookalike`): impersonation is
stopped there, so the holder of a namespace can always publish in it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, delete, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.sql import Prepared
from registry.config import RegistryConfig
from registry.errors import (
    AuthenticationError,
    Conflict,
    InvalidName,
    NotFound,
    PermissionDenied,
    ReservedName,
    RevokedKey,
    UnknownKey,
)
from registry.models import ApiToken, Namespace, Publisher, SigningKeyRecord, WebSession, utcnow
from registry.names import (
    NAME_PART_RULE,
    check_namespace_lookalike,
    normalize_part,
    validate_namespace,
)
from registry.schemas import (
    SCOPES,
    KeyPublic,
    Principal,
    PublisherPublic,
    TokenPublic,
    WebSessionPublic,
)
from registry.signing import key_id_for, load_public, verify_rotation

TOKEN_PREFIX = "afr_"
MAX_WEB_SESSIONS = 20
# Core tables for the per-request token lookup (no ORM objects on that path); set by SQLModel's
# metaclass, unknown to its stubs.
_TOKEN: Table = ApiToken.__table__  # type: ignore[attr-defined]
_PUBLISHER: Table = Publisher.__table__  # type: ignore[attr-defined]
_NAMESPACE: Table = Namespace.__table__  # type: ignore[attr-defined]
# One row per namespace of the token's holder (one row with none if it has none); built once.
_BY_TOKEN = (
    sa_select(
        _TOKEN.c.publisher_id, _TOKEN.c.scopes, _TOKEN.c.token_id, _PUBLISHER.c.name,
        _NAMESPACE.c.normalized_name,
    )
    .join(_PUBLISHER, _PUBLISHER.c.id == _TOKEN.c.publisher_id)
    .outerjoin(_NAMESPACE, _NAMESPACE.c.publisher_id == _TOKEN.c.publisher_id)
    .where(_TOKEN.c.token_hash == bindparam("t_hash"), _TOKEN.c.revoked_at.is_(None))
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes and "admin" not in principal.scopes:
        raise PermissionDenied(f"the token lacks the {scope!r} scope")


def publisher_public(session: Session, publisher: Publisher) -> PublisherPublic:
    assert publisher.id is not None
    namespaces = session.exec(
        select(Namespace.name).where(Namespace.publisher_id == publisher.id)
    ).all()
    return PublisherPublic(
        id=publisher.id, name=publisher.name, namespaces=sorted(namespaces),
        created_at=publisher.created_at,
    )


def _issue_token(session: Session, publisher_id: int, scopes: set[str]) -> str:
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise PermissionDenied(f"unknown or empty scopes {sorted(unknown)}; use {sorted(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_id=secrets.token_hex(8), publisher_id=publisher_id,
            token_hash=hash_token(token), scopes=" ".join(sorted(scopes)),
        )
    )
    return token


def _claim_namespace(
    session: Session, publisher_id: int, namespace: str, config: RegistryConfig
) -> None:
    normalized = validate_namespace(namespace)
    if normalized in config.reserved_namespaces:
        raise ReservedName(namespace)
    if session.exec(select(Namespace).where(Namespace.normalized_name == normalized)).first():
        raise Conflict(f"namespace {namespace!r} is already taken")
    # Only names one character shorter or longer can be one edit away.
    neighbours = session.exec(
        select(Namespace.normalized_name).where(
            Namespace.publisher_id != publisher_id,
            func.length(Namespace.normalized_name).between(
                len(normalized) - 1, len(normalized) + 1
            ),
        )
    ).all()
    check_namespace_lookalike(namespace, neighbours, config.lookalike_min_length)
    session.add(Namespace(name=namespace, normalized_name=normalized, publisher_id=publisher_id))


def register_publisher(
    session: Session, name: str, namespace: str | None, email: str | None,
    config: RegistryConfig,
) -> tuple[PublisherPublic, str]:
    """A new publisher (and namespace, if given) with a publish+review+run token."""
    try:
        normalized = validate_namespace(name)
    except InvalidName as exc:
        raise InvalidName(name, f"must be {NAME_PART_RULE}", what="publisher name") from exc
    if session.exec(select(Publisher).where(Publisher.normalized_name == normalized)).first():
        raise Conflict(f"publisher {name!r} already exists")
    publisher = Publisher(name=name, normalized_name=normalized, email=email)
    session.add(publisher)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"publisher {name!r} already exists") from None
    assert publisher.id is not None
    if namespace is not None:
        _claim_namespace(session, publisher.id, namespace, config)
    token = _issue_token(session, publisher.id, {"publish", "review", "run"})
    session.flush()
    return publisher_public(session, publisher), token


def add_namespace(
    session: Session, principal: Principal, namespace: str, config: RegistryConfig
) -> None:
    require_scope(principal, "publish")
    _claim_namespace(session, principal.publisher_id, namespace, config)


def create_token(session: Session, principal: Principal, scopes: set[str]) -> str:
    # A token can only hand out scopes it holds itself (admin holds them all).
    if "admin" not in principal.scopes and not set(scopes) <= principal.scopes:
        raise PermissionDenied("a token cannot grant scopes it does not hold")
    return _issue_token(session, principal.publisher_id, set(scopes))


def revoke_token(session: Session, principal: Principal, token_id: str) -> None:
    row = session.exec(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    if row is None or (
        row.publisher_id != principal.publisher_id and "admin" not in principal.scopes
    ):
        raise NotFound("token", token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)


def tokens(session: Session, principal: Principal) -> list[TokenPublic]:
    rows = session.exec(
        select(ApiToken).where(ApiToken.publisher_id == principal.publisher_id)
    ).all()
    return [
        TokenPublic(token_id=r.token_id, scopes=r.scopes.split(), created_at=r.created_at,
                    revoked_at=r.revoked_at)
        for r in rows
    ]


def authenticate(conn: Connection, token: str) -> Principal:
    """The holder of `token`, in one query, inside the caller's transaction."""
    return _authenticate(conn.connection, conn.dialect, token)


def authenticate_on(engine: Engine, token: str) -> Principal:
    """`authenticate`, on a connection of `engine`'s pool of its own."""
    connection = engine.raw_connection()
    try:
        return _authenticate(connection, engine.dialect, token)
    finally:
        connection.close()  # back to the pool, which rolls back whatever the driver began


@lru_cache(maxsize=8)
def _by_token(dialect: Dialect) -> Prepared:
    return Prepared.compile(_BY_TOKEN, dialect)


def _authenticate(connection: Any, dialect: Dialect, token: str) -> Principal:
    """`authenticate` on a DB-API connection: every request with a token asks this, so the
    query runs on the driver's cursor (`core.sql.Prepared`)."""
    if not token.startswith(TOKEN_PREFIX):
        raise AuthenticationError("malformed token")
    cursor = connection.cursor()
    try:
        _by_token(dialect).execute(cursor, {"t_hash": hash_token(token)})
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return _holder(rows)


def _holder(rows: Sequence[Any]) -> Principal:
    """The principal from `_BY_TOKEN`'s rows (one per namespace of the account)."""
    if not rows:
        raise AuthenticationError()
    publisher_id, scopes, token_id, name, _ = rows[0]
    return Principal(
        publisher_id=publisher_id, name=name,
        namespaces=frozenset(row[4] for row in rows if row[4] is not None),
        scopes=frozenset(scopes.split()), token_id=token_id,
    )


def _principal(session: Session, row: ApiToken) -> Principal:
    publisher = session.get(Publisher, row.publisher_id)
    assert publisher is not None
    namespaces = session.exec(
        select(Namespace.normalized_name).where(Namespace.publisher_id == row.publisher_id)
    ).all()
    return Principal(
        publisher_id=row.publisher_id, name=publisher.name, namespaces=frozenset(namespaces),
        scopes=frozenset(row.scopes.split()), token_id=row.token_id,
    )


def _utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (SQLite hands back naive UTC, PostgreSQL aware)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def open_web_session(
    session: Session, token: str, ttl: timedelta, now: datetime
) -> tuple[str, WebSessionPublic]:
    """A new session for `token`'s holder: its plaintext id (returned once) and its record."""
    principal = authenticate(session.connection(), token)
    stamp = _utc(now)
    session.execute(delete(WebSession).where(col(WebSession.expires_at) <= stamp))
    kept = session.exec(
        select(WebSession.id)
        .where(WebSession.publisher_id == principal.publisher_id)
        .order_by(col(WebSession.created_at).desc(), col(WebSession.id).desc())
        .limit(MAX_WEB_SESSIONS - 1)
    ).all()
    session.execute(
        delete(WebSession).where(
            col(WebSession.publisher_id) == principal.publisher_id,
            col(WebSession.id).not_in(kept),
        )
    )
    session_id = secrets.token_urlsafe(32)  # 256 bits
    row = WebSession(
        id_hash=hash_token(session_id), publisher_id=principal.publisher_id,
        token_id=principal.token_id, csrf_secret=secrets.token_urlsafe(32),
        created_at=stamp, expires_at=stamp + ttl,
    )
    session.add(row)
    session.flush()
    return session_id, WebSessionPublic(principal, row.csrf_secret, stamp + ttl)


def web_session(session: Session, session_id: str, now: datetime) -> WebSessionPublic | None:
    """The live session with this id; None when unknown, signed out, expired or its token
    revoked."""
    row = session.exec(
        select(WebSession).where(WebSession.id_hash == hash_token(session_id))
    ).first()
    if row is None or _utc(row.expires_at) <= _utc(now):
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_id == row.token_id)).first()
    if token is None or token.revoked_at is not None:
        return None
    return WebSessionPublic(_principal(session, token), row.csrf_secret, _utc(row.expires_at))


def close_web_session(session: Session, session_id: str) -> None:
    """Sign out: the session's row is deleted, so its id is worthless from now on."""
    session.execute(delete(WebSession).where(col(WebSession.id_hash) == hash_token(session_id)))


def key_public(record: SigningKeyRecord, publisher: str) -> KeyPublic:
    return KeyPublic(
        key_id=record.key_id, publisher=publisher, public_key=record.public_key,
        signed_by=record.signed_by, rotation_signature=record.rotation_signature,
        created_at=record.created_at, revoked_at=record.revoked_at,
    )


def add_key(
    session: Session, principal: Principal, public_key: bytes,
    rotation_signature: bytes | None, signed_by: str | None,
) -> KeyPublic:
    require_scope(principal, "publish")
    load_public(public_key)  # InvalidKey unless 32 raw Ed25519 bytes
    key_id = key_id_for(public_key)
    if session.get(SigningKeyRecord, key_id) is not None:
        raise Conflict(f"key {key_id} is already registered")
    current = session.exec(
        select(SigningKeyRecord).where(
            SigningKeyRecord.publisher_id == principal.publisher_id,
            col(SigningKeyRecord.revoked_at).is_(None),
        )
    ).all()
    has_any = session.exec(
        select(SigningKeyRecord.key_id).where(
            SigningKeyRecord.publisher_id == principal.publisher_id
        )
    ).first()
    if has_any is not None:
        if rotation_signature is None or signed_by is None:
            raise PermissionDenied("a new key needs a rotation statement signed by a current key")
        signer = next((k for k in current if k.key_id == signed_by), None)
        if signer is None:
            revoked = session.get(SigningKeyRecord, signed_by)
            if revoked is not None and revoked.publisher_id == principal.publisher_id:
                raise RevokedKey(signed_by)
            raise UnknownKey(signed_by)
        verify_rotation(signer.public_key, rotation_signature, public_key, principal.name)
    record = SigningKeyRecord(
        key_id=key_id, publisher_id=principal.publisher_id, public_key=public_key,
        signed_by=signed_by if has_any is not None else None,
        rotation_signature=rotation_signature if has_any is not None else None,
    )
    session.add(record)
    session.flush()
    return key_public(record, principal.name)


def revoke_key(session: Session, principal: Principal, key_id: str) -> KeyPublic:
    require_scope(principal, "publish")
    record = session.get(SigningKeyRecord, key_id)
    if record is None or (
        record.publisher_id != principal.publisher_id and "admin" not in principal.scopes
    ):
        raise UnknownKey(key_id)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.add(record)
    return key_public(record, principal.name)


def keys(session: Session, publisher: str) -> list[KeyPublic]:
    row = session.exec(
        select(Publisher).where(Publisher.normalized_name == normalize_part(publisher))
    ).first()
    if row is None:
        raise NotFound("publisher", publisher)
    records = session.exec(
        select(SigningKeyRecord)
        .where(SigningKeyRecord.publisher_id == row.id)
        .order_by(col(SigningKeyRecord.created_at))
    ).all()
    return [key_public(r, row.name) for r in records]
