"""Per-task count of live labels, kept in the task row.

Why: on PostgreSQL (READ COMMITTED) a lease grab of the form ``UPDATE tasks ... WHERE lease is
free AND (SELECT count(*) FROM labels ...) < N`` can succeed on a task that a concurrent
transaction has just labeled, because after waiting for the row lock PostgreSQL re-checks the
row but not the subquery. With the count in the row itself, the re-check sees it.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as b:
        b.add_column(sa.Column("n_labels", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE tasks SET n_labels = (SELECT count(*) FROM labels "
               "WHERE labels.task_id = tasks.id AND labels.undone_seq = 0)")
    op.create_index("ix_tasks_project_n_labels", "tasks", ["project_id", "n_labels"])


def downgrade() -> None:
    op.drop_index("ix_tasks_project_n_labels", "tasks")
    with op.batch_alter_table("tasks") as b:
        b.drop_column("n_labels")
