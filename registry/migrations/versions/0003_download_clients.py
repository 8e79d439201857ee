"""Count a release's downloads once per client per day.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

`download_client` remembers which clients (sha256 of an account or an address) downloaded a
release today; a second download by the same client the same day is served but not counted.
Counts recorded before this revision are kept as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "download_client",
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("release.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.CheckConstraint("length(client) = 64", name="download_client_len"),
    )
    op.create_index("ix_download_client_day", "download_client", ["day"])


def downgrade() -> None:
    op.drop_table("download_client")
