"""Server-side web sessions in the registry, on SQLite and PostgreSQL: hashed ids, expiry at the
second, sign-out, revocation and the per-account cap."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from registry.accounts import MAX_WEB_SESSIONS
from registry.errors import AuthenticationError
from registry.models import WebSession
from registry.service import Registry
from tests.registry.factories import TestPublisher

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def rows(registry: Registry) -> list[WebSession]:
    with Session(registry.engine) as s:
        return list(s.exec(select(WebSession)).all())


def test_a_session_acts_as_its_token_until_it_expires(
    registry: Registry, acme: TestPublisher
) -> None:
    session_id, opened = registry.open_web_session(acme.token, HOUR, NOW)
    assert len(session_id) == 43 and opened.principal == acme.principal
    assert opened.expires_at == NOW + HOUR and len(opened.csrf_secret) >= 43
    (row,) = rows(registry)
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert session_id not in (row.id_hash, row.csrf_secret)
    found = registry.web_session(session_id, NOW + HOUR - timedelta(seconds=1))
    assert found is not None and found.principal == acme.principal
    assert found.csrf_secret == opened.csrf_secret and found.expires_at == NOW + HOUR
    # The same instant written in another zone is the same instant.
    paris = timezone(timedelta(hours=1))
    assert registry.web_session(session_id, (NOW + HOUR).astimezone(paris)) is None
    assert registry.web_session(session_id, NOW + HOUR) is None
    assert registry.web_session("x" * 43, NOW) is None


def test_sign_out_and_revocation_end_a_session(registry: Registry, acme: TestPublisher) -> None:
    first, _ = registry.open_web_session(acme.token, HOUR, NOW)
    second, _ = registry.open_web_session(acme.token, HOUR, NOW)
    registry.close_web_session(first)
    registry.close_web_session(first)  # twice is harmless
    assert registry.web_session(first, NOW) is None
    assert registry.web_session(second, NOW) is not None
    registry.revoke_token(acme.principal, acme.principal.token_id)
    assert registry.web_session(second, NOW) is None
    with pytest.raises(AuthenticationError):
        registry.open_web_session(acme.token, HOUR, NOW)
    with pytest.raises(AuthenticationError):
        registry.open_web_session("afr_forged", HOUR, NOW)


def test_expired_rows_are_swept_and_an_account_keeps_few(
    registry: Registry, acme: TestPublisher
) -> None:
    old, _ = registry.open_web_session(acme.token, HOUR, NOW - 2 * HOUR)
    ids = [registry.open_web_session(acme.token, HOUR, NOW + timedelta(seconds=i))[0]
           for i in range(MAX_WEB_SESSIONS + 3)]
    assert len(rows(registry)) == MAX_WEB_SESSIONS
    assert registry.web_session(old, NOW - 2 * HOUR) is None  # swept, not only expired
    assert all(registry.web_session(i, NOW) is None for i in ids[:3])  # the oldest went
    assert all(registry.web_session(i, NOW) is not None for i in ids[3:])
