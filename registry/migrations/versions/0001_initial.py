"""The registry's first schema: accounts, keys, packages, releases, reviews, downloads, search.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The tables mirror `registry.models` as they were when migrations were introduced (a test keeps
models and migrations in agreement). Types are spelled with plain SQLAlchemy types so that the
schema does not depend on the installed SQLModel version. Search support differs per dialect
and is created by `create_search_objects`, which `registry.db` also uses to adopt a database
made before migrations existed (so it must be idempotent):

* SQLite: the FTS5 table `package_fts` (rowid = package id) kept in step with `package` by
  triggers, in the same transaction as the change. Without FTS5 compiled into SQLite, nothing
  is created and search falls back to LIKE.
* PostgreSQL: a stored generated `tsvector` column `package.search_vector` (weights: name A,
  keywords B, summary C, capabilities and template names D) with a GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)
# The text FTS5 indexes for a package row `r`: list fields are stored as "|a|b|".
_FTS_VALUES = (
    "{r}.id, replace({r}.name, '/', ' ') || ' ' || {r}.normalized_name, {r}.summary, "
    "trim(replace({r}.keywords, '|', ' ')), trim(replace({r}.capabilities, '|', ' ')), "
    "trim(replace({r}.template_names, '|', ' '))"
)
_FTS_COLUMNS = "rowid, name, summary, keywords, capabilities, templates"
# PostgreSQL's parser reads "acme/digest" as one file-path token; FTS5 splits it in two.
# translate() makes both see the same words.
_PG_VECTOR = (
    "setweight(to_tsvector('simple', translate(name || ' ' || normalized_name, '/', ' ')), 'A')"
    " || setweight(to_tsvector('simple', translate(keywords, '|/', '  ')), 'B')"
    " || setweight(to_tsvector('simple', summary), 'C')"
    " || setweight(to_tsvector('simple', translate(capabilities || template_names, '|/', '  '))"
    ", 'D')"
)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _publisher_fk(name: str = "publisher_id") -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("publisher.id"), nullable=False)


def _index(table: str, *columns: str, unique: bool = False) -> None:
    for column in columns:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=unique)


def upgrade() -> None:
    op.create_table(
        "publisher", sa.Column("name", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320)), _id(),
        sa.Column("normalized_name", sa.String(64), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
    )
    _index("publisher", "normalized_name", unique=True)
    op.create_table(
        "api_token", _id(), sa.Column("token_id", sa.String(32), nullable=False),
        _publisher_fk(), sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False), sa.Column("revoked_at", _STAMP),
        sa.CheckConstraint("length(token_hash) = 64", name="token_hash_len"),
    )
    _index("api_token", "publisher_id")
    _index("api_token", "token_hash", "token_id", unique=True)
    op.create_table(
        "namespace", _id(), sa.Column("name", sa.String(64), nullable=False),
        sa.Column("normalized_name", sa.String(64), nullable=False), _publisher_fk(),
    )
    _index("namespace", "normalized_name", unique=True)
    _index("namespace", "publisher_id")
    op.create_table(
        "signing_key", sa.Column("key_id", sa.String(32), primary_key=True), _publisher_fk(),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("signed_by", sa.String(32)), sa.Column("rotation_signature", sa.LargeBinary()),
        sa.Column("created_at", _STAMP, nullable=False), sa.Column("revoked_at", _STAMP),
    )
    _index("signing_key", "publisher_id")
    op.create_table(
        "package", sa.Column("name", sa.String(130), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("license", sa.String(100), nullable=False), sa.Column("homepage", sa.String()),
        _id(), sa.Column("normalized_name", sa.String(130), nullable=False),
        sa.Column("namespace_id", sa.Integer(), sa.ForeignKey("namespace.id"), nullable=False),
        _publisher_fk(),
        *[sa.Column(name, sa.String(), nullable=False)
          for name in ("keywords", "capabilities", "tools", "template_names")],
        sa.Column("latest_version", sa.String()),
        sa.Column("readme", sa.Text(), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("updated_at", _STAMP, nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False)
          for name in ("downloads", "review_count", "stars_sum", "stars_1", "stars_2",
                       "stars_3", "stars_4", "stars_5")],
        sa.CheckConstraint("downloads >= 0", name="package_downloads_nonneg"),
        sa.CheckConstraint("review_count >= 0 AND stars_sum >= 0", name="package_reviews_nonneg"),
    )
    _index("package", "downloads", "namespace_id", "publisher_id", "updated_at")
    _index("package", "normalized_name", unique=True)
    op.create_table(
        "release", _id(),
        sa.Column("package_id", sa.Integer(), sa.ForeignKey("package.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("canonical_version", sa.String(64), nullable=False),
        sa.Column("prerelease", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), sa.ForeignKey("signing_key.key_id"), nullable=False),
        sa.Column("uploaded_at", _STAMP, nullable=False),
        sa.Column("yanked", sa.Boolean(), nullable=False), sa.Column("yank_reason", sa.String()),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.UniqueConstraint("package_id", "canonical_version", name="release_package_version"),
        sa.CheckConstraint("length(digest) = 64", name="release_digest_len"),
        sa.CheckConstraint("size > 0", name="release_size_pos"),
    )
    _index("release", "package_id")
    op.create_table(
        "review", _id(),
        sa.Column("package_id", sa.Integer(), sa.ForeignKey("package.id"), nullable=False),
        _publisher_fk("reviewer_id"), sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False), sa.Column("version", sa.String()),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("updated_at", _STAMP, nullable=False),
        sa.Column("reply", sa.Text()), sa.Column("reply_at", _STAMP),
        sa.Column("flag_count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("package_id", "reviewer_id", name="review_one_per_user"),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name="review_stars_range"),
    )
    _index("review", "package_id", "reviewer_id")
    op.create_table(
        "review_flag", _id(),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("review.id", ondelete="CASCADE"),
                  nullable=False),
        _publisher_fk("flagger_id"), sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.UniqueConstraint("review_id", "flagger_id", name="flag_one_per_user"),
    )
    _index("review_flag", "review_id")
    op.create_table(
        "download_count",
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("release.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("count >= 0", name="download_count_nonneg"),
    )
    create_search_objects(op.get_bind())


def create_search_objects(bind: Connection) -> None:
    """Create (or rebuild) the dialect's search support; safe to run more than once."""
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(
            f"ALTER TABLE package ADD COLUMN IF NOT EXISTS search_vector tsvector "
            f"GENERATED ALWAYS AS ({_PG_VECTOR}) STORED"
        )
        bind.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_package_search_vector ON package "
            "USING gin (search_vector)"
        )
    elif bind.dialect.name == "sqlite":
        try:
            with bind.begin_nested():  # a savepoint: a missing FTS5 must not void the upgrade
                bind.exec_driver_sql("DROP TABLE IF EXISTS package_fts")
                bind.exec_driver_sql(
                    "CREATE VIRTUAL TABLE package_fts USING fts5(name, summary, keywords, "
                    "capabilities, templates, tokenize = 'unicode61 remove_diacritics 2')"
                )
        except OperationalError:
            return
        _sqlite_triggers(bind)
        bind.exec_driver_sql(
            f"INSERT INTO package_fts ({_FTS_COLUMNS}) "
            f"SELECT {_FTS_VALUES.format(r='package')} FROM package"
        )


def _sqlite_triggers(bind: Connection) -> None:
    insert = f"INSERT INTO package_fts ({_FTS_COLUMNS}) VALUES ({_FTS_VALUES.format(r='new')});"
    delete = "DELETE FROM package_fts WHERE rowid = old.id;"
    # Only the indexed columns: a download count or a new review must not rewrite the index.
    watched = "name, normalized_name, summary, keywords, capabilities, template_names"
    for name, when, body in (
        ("package_fts_insert", "AFTER INSERT ON package", insert),
        ("package_fts_update", f"AFTER UPDATE OF {watched} ON package", delete + " " + insert),
        ("package_fts_delete", "AFTER DELETE ON package", delete),
    ):
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        bind.exec_driver_sql(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("package_fts_insert", "package_fts_update", "package_fts_delete"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        bind.exec_driver_sql("DROP TABLE IF EXISTS package_fts")
    for table in ("download_count", "review_flag", "review", "release", "package",
                  "signing_key", "namespace", "api_token", "publisher"):
        op.drop_table(table)  # their indexes and the PostgreSQL search column go with them
