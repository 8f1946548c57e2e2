"""Per-project instructions and per-label time spent.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as b:
        b.add_column(sa.Column("instructions", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("labels") as b:
        b.add_column(sa.Column("duration_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("labels") as b:
        b.drop_column("duration_ms")
    with op.batch_alter_table("projects") as b:
        b.drop_column("instructions")
