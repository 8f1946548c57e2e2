"""Fixtures for the labeling app tests: databases (SQLite, PostgreSQL), seeded projects, and a real
server process (for the browser and load tests)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_MISSING = [m for m in ("fastapi", "sqlalchemy", "alembic", "jinja2", "multipart", "httpx")
            if importlib.util.find_spec(m) is None]
if _MISSING:  # the web stack is an optional extra: don't fail the rest of the suite without it
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config):
    if _MISSING:
        return f"tests/label skipped: missing {', '.join(_MISSING)} (pip install -e '.[label]')"
    return None

PG_ENV = "ALIGNSTACK_TEST_PG_URL"

PAIRWISE_ROWS = [
    {"prompt": "Write a haiku about autumn.", "completions": ["Leaves fall, cold wind sighs,\nthe year exhales.",
                                                            "Autumn is a season."], "meta": {"src": "p0"}},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
     "completions": ["4", "It is 5."], "meta": {"src": "p1"}},
    {"prompt": "Say hi <script>alert('x')</script>", "completions": ["hi <b>there</b>", "Robert'); DROP TABLE labels;--"]},
]
RANKING_ROWS = [
    {"prompt": "Name a prime number.", "completions": ["7", "9", "Primes are numbers.", "2"], "meta": {"src": "r0"}},
    {"prompt": "Capital of France?", "completions": ["Paris", "Lyon", "France has no capital", "It is Paris, on the Seine."]},
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (start a server with .ci/postgres.sh and set it to "
                    "postgresql+psycopg://postgres@localhost:5432/postgres)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    from sqlalchemy import create_engine, text

    try:
        eng = create_engine(url)
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
    except Exception as e:  # noqa: BLE001 - any connection failure means "skip"
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable: {str(e).splitlines()[0]}")
    return url


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test (created and dropped around it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = _pg_base_url()
    name = f"alignstack_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The storage backends every storage test runs against."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'label.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def seed_db(db_url: str):
    """A database with a pairwise project "pw" (2 labels/task, with instructions) and a ranking
    project "rk" (4 responses), an admin, two annotators who are members of both, and an
    outsider who is a member of neither. Returns (engine, sessionmaker)."""
    from alignstack.label import accounts, projects
    from alignstack.label.db import open_db

    engine, Session_ = open_db(db_url)
    with Session_.begin() as s:
        pw = projects.get_or_create_project(s, "pw", "pairwise", 2, "Pick the more helpful answer.\n"
                                            "Mark a response unsafe if it could cause harm.")
        projects.import_rows(s, pw, projects.parse_samples([json.dumps(r) for r in PAIRWISE_ROWS], "pairwise", "pw.jsonl"))
        rk = projects.get_or_create_project(s, "rk", "ranking", 1)
        projects.import_rows(s, rk, projects.parse_samples([json.dumps(r) for r in RANKING_ROWS], "ranking", "rk.jsonl"))
        accounts.add_user(s, "admin", "admin", "admin-pw")
        accounts.add_user(s, "ann1", "annotator", "pw1", ["pw", "rk"])
        accounts.add_user(s, "ann2", "annotator", "pw2", ["pw", "rk"])
        accounts.add_user(s, "outsider", "annotator", "pw3")
    return engine, Session_


@pytest.fixture
def seeded(db_url):
    engine, Session_ = seed_db(db_url)
    yield {"url": db_url, "engine": engine, "Session": Session_}
    engine.dispose()


@pytest.fixture
def seed():
    return seed_db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m alignstack.label.cli serve`` in a subprocess, (re)startable on the same port."""

    def __init__(self, db_url: str, workdir: Path, lease_seconds: float = 600):
        self.db_url, self.workdir, self.lease_seconds = db_url, workdir, lease_seconds
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        import urllib.request

        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log = open(self.workdir / f"server-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alignstack.label.cli", "serve", "--db", self.db_url, "--port", str(self.port),
             "--lease-seconds", str(self.lease_seconds)], cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {(self.workdir / f'server-{self.port}.log').read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/login", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not come up")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server_factory(tmp_path):
    servers: list[ServerProcess] = []

    def make(db_url: str, **kw) -> ServerProcess:
        srv = ServerProcess(db_url, tmp_path, **kw)
        servers.append(srv)
        srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()


def login(client, name: str, password: str) -> str:
    """Log ``client`` (httpx or TestClient) in; returns the session's CSRF token."""
    r = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = client.post("/login", data={"username": name, "password": password, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    r = client.get("/")
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


@pytest.fixture
def log_in():
    return login


@pytest.fixture
def jsonl():
    return write_jsonl


