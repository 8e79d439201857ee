"""Keep browser sessions on the server.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

`web_session` holds one row per signed-in browser: the sha256 of the random id its cookie
carries (the cookie no longer holds an API token), the account and token it acts with, the
secret its forms echo, and its expiry. Cookies of the earlier, token-carrying kind are simply no
longer recognized: their holders sign in again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publisher.id"), nullable=False),
        sa.Column(
            "token_id", sa.String(32), sa.ForeignKey("api_token.token_id"), nullable=False
        ),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("expires_at", _STAMP, nullable=False),
        sa.CheckConstraint("length(id_hash) = 64", name="web_session_id_hash_len"),
    )
    op.create_index("ix_web_session_id_hash", "web_session", ["id_hash"], unique=True)
    op.create_index("ix_web_session_publisher_id", "web_session", ["publisher_id"])
    op.create_index("ix_web_session_expires_at", "web_session", ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_session")
