"""Database models and engine setup for the labeling app.

One schema serves SQLite (default, a file in the working directory) and PostgreSQL. The schema is
owned by the Alembic migrations in ``migrations/``; :func:`open_db` upgrades any older database to
head so a database created by an earlier release keeps working after an upgrade.

Design notes:

- A task's lease lives on the task row (``lease_user_id``/``lease_expires``) because at most one
  annotator may hold a task at a time; acquiring it is one conditional UPDATE, which is atomic on
  both backends. The row also counts its live labels (``n_labels``) so that the same UPDATE can
  check "still needs labels" against the latest committed row (see revision 0003).
- ``labels.idempotency_key`` is UNIQUE: that constraint, not application logic, is what makes a
  retried submission unable to create a duplicate.
- Sessions are signed cookies carrying a random session id; logout writes that id to
  ``revoked_sessions`` (revision 0004) so a copied cookie dies with the logout, server-side.
- Undo keeps the row (so a late retry of the undone submission still finds its key) and sets
  ``undone_seq`` to the label's own id; ``UNIQUE(task_id, user_id, undone_seq)`` then allows exactly
  one live (``undone_seq = 0``) label per annotator and task without backend-specific partial indexes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

DEFAULT_DB_URL = "sqlite:///alignstack_label.db"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Key/value settings; holds the cookie-signing secret so sessions survive restarts."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RevokedSession(Base):
    """A session id logged out before its cookie expired (revision 0004); checked on every request."""

    __tablename__ = "revoked_sessions"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires: Mapped[float] = mapped_column(Float, index=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # "admin" | "annotator"
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[float] = mapped_column(Float)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "pairwise" | "ranking"
    labels_per_task: Mapped[int] = mapped_column(Integer)
    instructions: Mapped[str] = mapped_column(Text, default="")  # added in revision 0002
    created_at: Mapped[float] = mapped_column(Float)


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_json: Mapped[str] = mapped_column(Text)  # list of {role, content}
    completions_json: Mapped[str] = mapped_column(Text)  # list of str
    meta_json: Mapped[str] = mapped_column(Text, default="{}")
    lease_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    n_labels: Mapped[int] = mapped_column(Integer, default=0)  # live labels; revision 0003

    @property
    def prompt(self) -> list[dict]:
        return json.loads(self.prompt_json)

    @property
    def completions(self) -> list[str]:
        return json.loads(self.completions_json)

    @property
    def meta(self) -> dict:
        return json.loads(self.meta_json or "{}")


class Skip(Base):
    """An annotator passed on a task; it is not offered to them again."""

    __tablename__ = "skips"
    __table_args__ = (UniqueConstraint("task_id", "user_id", name="uq_skips_task_user"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(Float)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("task_id", "user_id", "undone_seq", name="uq_labels_task_user_live"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    choice: Mapped[int | None] = mapped_column(Integer, nullable=True)  # pairwise: index of the better one
    strength: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ranking_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # ranking: indices best first
    safe_json: Mapped[str] = mapped_column(Text)  # one bool per completion
    undone_seq: Mapped[int] = mapped_column(Integer, default=0)  # 0 = live; else = own id (undone)
    created_at: Mapped[float] = mapped_column(Float)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # added in revision 0002

    @property
    def ranking(self) -> list[int] | None:
        return None if self.ranking_json is None else json.loads(self.ranking_json)

    @property
    def safe(self) -> list[bool]:
        return json.loads(self.safe_json)


def resolve_url(url: str | None) -> str:
    """``--db`` value, else ``$ALIGNSTACK_LABEL_DB``, else a SQLite file in the working directory."""
    return url or os.environ.get("ALIGNSTACK_LABEL_DB") or DEFAULT_DB_URL


def make_engine(url: str | None = None) -> Engine:
    """An engine with per-backend connection setup.

    SQLite: WAL journal (readers never block the writer), a busy timeout, foreign keys on, and
    ``BEGIN IMMEDIATE`` for every transaction: our transactions read-then-write, and a deferred
    transaction that tries to upgrade after another writer committed fails at once with
    SQLITE_BUSY instead of waiting, so we take the write lock up front. Within one process the
    pool holds a single connection, so threads queue for it in order instead of spinning in
    SQLite's busy handler (whose sleeps made the latency tail 5x worse under 20 clients); other
    processes (a CLI export while the server runs) still wait on ``busy_timeout``.
    """
    url = resolve_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=1, max_overflow=0, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (creating it from scratch if empty)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def open_db(url: str | None = None, *, upgrade: bool = True) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for ``url``, migrated to head."""
    engine = make_engine(url)
    if upgrade:
        migrate(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
