"""Record the sandbox's vetting report on each release.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Releases published before this revision keep `vetting_status = 'not-run'` and no report: they
were never vetted by the registry (installers still vet every package themselves).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "release",
        sa.Column("vetting_status", sa.String(16), nullable=False, server_default="not-run"),
    )
    op.add_column("release", sa.Column("vetting_report", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("release") as batch:
        batch.drop_column("vetting_report")
        batch.drop_column("vetting_status")
