"""Sessions revoked by logout.

Why: the session cookie is signed, not stored, so before this revision a cookie copied before
logout stayed valid for its whole 12 hour lifetime. Logout now records the session's id here and
every request checks it. Rows are deleted once the cookie would have expired anyway.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("revoked_sessions",
                    sa.Column("sid", sa.String(64), primary_key=True),
                    sa.Column("expires", sa.Float(), nullable=False))
    op.create_index("ix_revoked_sessions_expires", "revoked_sessions", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_revoked_sessions_expires", "revoked_sessions")
    op.drop_table("revoked_sessions")
