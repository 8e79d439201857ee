"""Trust: verified reviews, deprecation and revocation.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

- `account_download`: which account downloaded which release (one row per pair), the evidence
  that makes a review verified;
- `review.release_id` and `review.verified`: the release a review is about and whether its
  author had downloaded it. Reviews written before this revision are unverified (nobody
  recorded their downloads), so they are shown apart and leave the rating; each package's
  aggregates are recounted here from its (now zero) verified reviews;
- `release.deprecated_reason`, `release.deprecated_successor`, `release.revoked`;
- `revocation`: the signed statement of each revoked release.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account_download",
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publisher.id"), primary_key=True),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("release.id"), primary_key=True),
        sa.Column("first_at", _STAMP, nullable=False),
    )
    op.create_index("ix_account_download_release_id", "account_download", ["release_id"])
    with op.batch_alter_table("review") as batch:
        batch.add_column(sa.Column("release_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_foreign_key("fk_review_release_id", "release", ["release_id"], ["id"])
        batch.create_index("ix_review_release_id", ["release_id"])
    op.add_column("release", sa.Column("deprecated_reason", sa.String(1000), nullable=True))
    op.add_column("release", sa.Column("deprecated_successor", sa.String(130), nullable=True))
    op.add_column(
        "release", sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_table(
        "revocation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("release.id"), nullable=False,
                  unique=True),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(16), nullable=False),
        sa.Column("revoked_by", sa.Integer(), sa.ForeignKey("publisher.id"), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.CheckConstraint("signer IN ('publisher', 'registry')", name="revocation_signer"),
    )
    # Old reviews are unverified now: the aggregates count verified reviews only.
    op.execute(
        "UPDATE package SET review_count = 0, stars_sum = 0, stars_1 = 0, stars_2 = 0, "
        "stars_3 = 0, stars_4 = 0, stars_5 = 0"
    )


def downgrade() -> None:
    op.drop_table("revocation")
    with op.batch_alter_table("release") as batch:
        batch.drop_column("revoked")
        batch.drop_column("deprecated_successor")
        batch.drop_column("deprecated_reason")
    with op.batch_alter_table("review") as batch:
        batch.drop_index("ix_review_release_id")
        batch.drop_constraint("fk_review_release_id", type_="foreignkey")
        batch.drop_column("verified")
        batch.drop_column("release_id")
    op.drop_index("ix_account_download_release_id", table_name="account_download")
    op.drop_table("account_download")
