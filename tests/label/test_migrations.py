"""Alembic migrations: a database created at the first revision opens after an upgrade."""
from sqlalchemy import inspect, text

from alignstack.label.db import current_revision, make_engine, migrate, open_db


def test_upgrade_from_first_revision_keeps_data(db_url):
    engine = make_engine(db_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    cols = {c["name"] for c in inspect(engine).get_columns("labels")}
    assert "duration_ms" not in cols
    with engine.begin() as c:  # data written by the old release
        c.execute(text("INSERT INTO projects (id, name, kind, labels_per_task, created_at) "
                       "VALUES (1, 'old', 'pairwise', 1, 0)"))
        c.execute(text("INSERT INTO users (id, name, role, password_hash, created_at) VALUES (1, 'u', 'annotator', 'x', 0)"))
        c.execute(text("INSERT INTO tasks (id, project_id, prompt_json, completions_json, meta_json, created_at) "
                       "VALUES (1, 1, '[{\"role\": \"user\", \"content\": \"p\"}]', '[\"a\", \"b\"]', '{}', 0)"))
        c.execute(text("INSERT INTO labels (idempotency_key, task_id, project_id, user_id, choice, strength, "
                       "safe_json, undone_seq, created_at) VALUES ('k-0000001', 1, 1, 1, 0, 'better', '[true, true]', 0, 0)"))
    engine.dispose()

    engine, Session_ = open_db(db_url)  # what the app does at startup
    assert current_revision(engine) == "0004"
    assert {"duration_ms"} <= {c["name"] for c in inspect(engine).get_columns("labels")}
    from alignstack.label.db import Label, Project, Task

    with Session_() as s:
        assert s.get(Project, 1).instructions == ""
        label = s.query(Label).one()
        assert label.idempotency_key == "k-0000001" and label.duration_ms is None
        assert s.get(Task, 1).n_labels == 1  # 0003 backfilled the counter from existing labels
    engine.dispose()


def test_sqlite_uses_wal(tmp_path):
    engine, _ = open_db(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
