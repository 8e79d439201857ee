"""The audit trail in the registry: events with their writes, refusals, visibility, append-only.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.context import correlated
from registry import Registry
from registry.audit import AuditQuery, bounded_detail
from registry.errors import DuplicateRelease, PermissionDenied
from registry.schemas import Principal
from tests.registry.factories import TestPublisher, make_publisher, publish

ROOT = Path(__file__).resolve().parents[2]


def trail(registry: Registry, viewer: Principal, **filters: object) -> list[tuple[str, ...]]:
    page = registry.audit_events(viewer, AuditQuery(per_page=200, **filters))  # type: ignore[arg-type]
    return [(e.actor, e.action, e.object_id, e.outcome) for e in reversed(page.items)]


def admin_of(registry: Registry, name: str) -> Principal:
    make_publisher(registry, name, key=False)
    return registry.authenticate(registry.operator_token(name))


def test_writes_and_refusals_are_recorded_with_the_callers_correlation_id(
    registry: Registry, acme: TestPublisher
) -> None:
    with correlated("req-publish-1"):
        publish(registry, acme, version="1.0.0")
    with correlated("req-publish-2"), pytest.raises(DuplicateRelease):
        publish(registry, acme, version="1.0.0")
    with correlated("req-yank"):
        registry.yank(acme.principal, "acme/summarizer", "1.0.0", "broken")

    assert trail(registry, acme.principal, object="acme/summarizer") == [
        ("acme", "package.publish", "acme/summarizer@1.0.0", "ok"),
        ("acme", "package.publish", "acme/summarizer@1.0.0", "refused:DuplicateRelease"),
        ("acme", "release.yank", "acme/summarizer@1.0.0", "ok"),
    ]
    published = registry.audit_events(acme.principal, AuditQuery(correlation_id="req-publish-1"))
    assert [(e.action, e.outcome) for e in published.items] == [("package.publish", "ok")]
    assert published.items[0].detail["key_id"] == acme.key.key_id
    assert len(published.items[0].detail["digest"]) == 64


def test_a_publisher_sees_their_objects_never_anothers_and_an_admin_sees_all(
    registry: Registry, acme: TestPublisher
) -> None:
    bob = make_publisher(registry, "bob")
    publish(registry, acme)
    registry.rate(bob.principal, "acme/summarizer", 4, "ok", "fine")
    with pytest.raises(PermissionDenied):  # bob tries to yank acme's release
        registry.yank(bob.principal, "acme/summarizer", "1.0.0", "mine now")
    bob_token = registry.create_token(bob.principal, {"review"})

    acme_sees = trail(registry, acme.principal)
    bob_sees = trail(registry, bob.principal)
    # Events on acme's package are acme's to see, whoever did them, refusals included.
    assert ("bob", "review.write", "acme/summarizer", "ok") in acme_sees
    assert ("bob", "release.yank", "acme/summarizer@1.0.0", "refused:PermissionDenied") in acme_sees
    # Bob's own account (his key, his new token) is not acme's business.
    assert all(action not in ("key.add", "token.create") for actor, action, _, _ in acme_sees
               if actor == "bob")
    assert ("bob", "account.register", "bob", "ok") not in acme_sees
    assert {actor for actor, *_ in bob_sees} == {"bob"}
    assert ("acme", "package.publish", "acme/summarizer@1.0.0", "ok") not in bob_sees
    assert bob_token not in str(bob_sees)  # tokens are named by id, never by value

    admin = admin_of(registry, "ops")
    everything = trail(registry, admin)
    assert set(acme_sees) | set(bob_sees) <= set(everything)
    assert ("system", "token.create") in {(a, b) for a, b, _, _ in everything}


def test_the_database_refuses_to_change_or_remove_an_event(
    registry: Registry, acme: TestPublisher
) -> None:
    publish(registry, acme)
    before = trail(registry, admin_of(registry, "ops"))
    for statement in ("UPDATE audit_event SET outcome = 'ok', actor = 'someone else'",
                      "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), registry.engine.begin() as conn:
            conn.execute(text(statement))
    assert trail(registry, admin_of(registry, "ops2"))[: len(before)] == before


def test_no_code_path_updates_or_deletes_audit_events() -> None:
    forbidden = [
        re.compile(r"\b(update|delete)\(\s*AuditEvent\b"),
        re.compile(r"(?i)\b(update\s+audit_event|delete\s+from\s+audit_event)\b"),
        re.compile(r"\.delete\(\s*(audit_)?event\b"),
        re.compile(r"\bAuditEvent\b.*\.(update|delete)\("),
    ]
    offenders = []
    for folder in ("core", "registry", "runs", "sandbox", "marketplace", "plugins", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # the migration creates the triggers that refuse both
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if any(p.search(line) for p in forbidden):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_details_are_small_and_hold_no_secrets() -> None:
    detail = bounded_detail({
        "token": "afr_secret", "csrf_secret": "x", "api_password": "p", "signature": "s",
        "reason": "r" * 10_000, **{f"k{i}": i for i in range(100)},
    })
    assert "afr_secret" not in detail and "secret" not in detail and "password" not in detail
    assert len(detail) <= 2048 and '"reason":"' + "r" * 200 + '"' in detail
