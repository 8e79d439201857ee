"""The public release log: leaves, completed subtrees and signed tree heads.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

`log_leaf` holds one row per accepted release (model `registry.models.LogLeaf`, written by
`registry.log_store` in the release's own transaction): its index in the Merkle tree, the
entry's fields and leaf hash. `log_node` keeps every completed perfect subtree above the
leaves, so roots and proofs read O(log n) rows; `log_head` the signed tree head of every size.
Releases published before this revision are appended by the registry itself, in upload order,
the first time it runs (`LogStore.sync`): signing needs the registry's key, which a migration
does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_leaf",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("release.id"), nullable=False,
                  unique=True),
        sa.Column("name", sa.String(130), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("record", sa.String(64)),
        sa.UniqueConstraint("name", "version", name="log_leaf_release"),
        sa.CheckConstraint("length(leaf_hash) = 64", name="log_leaf_hash_len"),
        sa.CheckConstraint("idx >= 0", name="log_leaf_idx_nonneg"),
    )
    op.create_table(
        "log_node",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("length(hash) = 64", name="log_node_hash_len"),
    )
    op.create_table(
        "log_head",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("length(root_hash) = 64", name="log_head_root_len"),
    )


def downgrade() -> None:
    op.drop_table("log_head")
    op.drop_table("log_node")
    op.drop_table("log_leaf")
