"""The schema is Alembic's: empty -> head, models == migrations, down and up, adoption."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from registry import LocalBlobStore, Registry
from registry.db import (
    alembic_config,
    current_revision,
    fts_available,
    head_revision,
    init_db,
    make_engine,
    schema_differences,
)
from registry.errors import SchemaMismatch
from tests.registry.databases import BACKENDS, PgServer
from tests.registry.factories import make_publisher, publish

TABLES = {
    "publisher",
    "namespace",
    "api_token",
    "signing_key",
    "package",
    "release",
    "review",
    "review_flag",
    "download_count",
    "download_client",
    "web_session",
    "audit_event",
    "log_leaf",
    "log_node",
    "log_head",
    "package_change",
    "rate_bucket",
    "account_download",
    "revocation",
}


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with no tables at all (not copied from the migrated template)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    server: PgServer = request.getfixturevalue("pg")
    url = server.create()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    server.drop(url)


def tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def differences(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return schema_differences(conn)


def test_empty_database_upgrades_to_head_with_search(empty_engine: Engine) -> None:
    assert tables(empty_engine) == set()
    init_db(empty_engine)
    assert revision(empty_engine) == head_revision() == "0011"
    assert tables(empty_engine) >= TABLES
    assert fts_available(empty_engine)


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    init_db(empty_engine)
    assert differences(empty_engine) == []


def test_downgrade_to_base_and_up_again(empty_engine: Engine, tmp_path: Path) -> None:
    init_db(empty_engine)
    with empty_engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert tables(empty_engine) <= {"alembic_version"}
    assert revision(empty_engine) is None
    registry = Registry(empty_engine, LocalBlobStore(tmp_path / "blobs"))
    assert revision(empty_engine) == head_revision()
    assert differences(empty_engine) == []
    publish(registry, make_publisher(registry, "acme"), summary="Finds needles in haystacks")
    assert [p.name for p in registry.search("haystack").items] == ["acme/summarizer"]


def test_releases_from_before_vetting_upgrade_as_not_run(
    empty_engine: Engine, tmp_path: Path
) -> None:
    registry = Registry(empty_engine, LocalBlobStore(tmp_path / "blobs"))
    released = publish(registry, make_publisher(registry, "acme"))
    with empty_engine.connect() as conn:
        command.downgrade(alembic_config(conn), "0001")
        conn.commit()
    assert "vetting_status" not in {c["name"] for c in inspect(empty_engine).get_columns("release")}
    init_db(empty_engine)
    [release] = registry.releases(released.name)
    assert (release.version, release.vetting_status, release.vetting) == (
        released.version,
        "not-run",
        None,
    )


def test_a_current_database_is_left_alone(registry: Registry) -> None:
    make_publisher(registry, "acme")
    init_db(registry.engine)
    init_db(registry.engine)
    assert registry.publisher("acme").name == "acme"
    assert revision(registry.engine) == head_revision()


def test_concurrent_first_starts_migrate_once(empty_engine: Engine) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            init_db(empty_engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert revision(empty_engine) == head_revision()
    assert differences(empty_engine) == []


def test_the_database_keeps_the_search_index_in_step(registry: Registry) -> None:
    """Even a change made behind the registry's back is searchable (triggers / generated)."""
    publish(registry, make_publisher(registry, "acme"), summary="Summarizes text")
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE package SET summary = 'Translates poetry'"))
    assert registry.search("summar").total == 1  # the name still matches
    assert [p.name for p in registry.search("poetry").items] == ["acme/summarizer"]
    assert registry.search("summarizes").total == 0  # the old summary is gone


def test_pre_migration_database_is_adopted(tmp_path: Path) -> None:
    """A SQLite registry made before migrations (the tables of revision 0001, an FTS table
    without triggers, no alembic_version) is stamped and upgraded, its data kept."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    with engine.begin() as conn:  # back to what the code before migrations left behind
        conn.execute(text("DROP TABLE alembic_version"))
        for (trigger,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'")):
            conn.execute(text(f"DROP TRIGGER {trigger}"))
        conn.execute(text("DROP TABLE package_fts"))
        conn.execute(
            text(
                "CREATE VIRTUAL TABLE package_fts USING fts5(name, summary, "
                "keywords, capabilities, templates)"
            )
        )
        conn.execute(text("INSERT INTO publisher (name, normalized_name, created_at) "
                          "VALUES ('old-timer', 'old-timer', CURRENT_TIMESTAMP)"))
    registry = Registry(engine, LocalBlobStore(tmp_path / "blobs"))
    assert revision(engine) == head_revision()
    assert registry.publisher("old-timer").name == "old-timer"
    publish(registry, make_publisher(registry, "acme"), summary="Counts sheep")
    assert [p.name for p in registry.search("sheep").items] == ["acme/summarizer"]
    registry.close()


def test_unexplained_schema_is_refused_untouched(empty_engine: Engine) -> None:
    with empty_engine.begin() as conn:
        conn.execute(text("CREATE TABLE package (id INTEGER PRIMARY KEY, owner TEXT)"))
    with pytest.raises(SchemaMismatch) as err:
        init_db(empty_engine)
    assert "owner" in str(err.value) and err.value.differences
    assert tables(empty_engine) == {"package"}  # nothing created, nothing stamped
