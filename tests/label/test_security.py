"""Security properties of the web app: auth everywhere, project isolation, admin-only actions,
escaping, SQL-looking input, CSRF."""
import json
import re
import uuid

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alignstack.label.app import PUBLIC_PATHS, create_app
from alignstack.label.auth import SESSION_COOKIE
from alignstack.label.db import Label, Task


@pytest.fixture
def app(seeded):
    return create_app(seeded["url"])


def _client(app):
    return TestClient(app, follow_redirects=False)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "pw", path)


def test_every_route_requires_auth(app):
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 10
    c = _client(app)
    checked = 0
    for route in routes:
        if route.path in PUBLIC_PATHS:
            continue
        for method in route.methods:
            r = c.request(method, _concrete(route.path), json={"task_id": 1})
            assert r.status_code in (401, 303), (method, route.path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"] == "/login"
            assert "pw" not in r.text and "autumn" not in r.text.lower()
            checked += 1
    assert checked >= 10
    assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
    # a forged or stale cookie is no better than none
    c.cookies.set(SESSION_COOKIE, "eyJ1aWQiOjF9.AAAA")
    assert c.get("/").status_code == 303
    assert c.get("/api/projects/pw/next").status_code == 401


def test_login_wrong_password_and_logout(app, log_in):
    c = _client(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": "ann1", "password": "nope", "csrf_token": token})
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    r = c.post("/login", data={"username": "ghost", "password": "nope", "csrf_token": token})
    assert r.status_code == 401
    csrf = log_in(c, "ann1", "pw1")
    set_cookie = c.get("/login").headers.get("set-cookie", "")
    assert "httponly" in set_cookie.lower() and "samesite=lax" in set_cookie.lower()
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert c.get("/").status_code == 303


def test_csrf_required_on_every_post(app, log_in):
    c = _client(app)
    csrf = log_in(c, "admin", "admin-pw")
    task_id = c.get("/api/projects/pw/next").json()["task"]["id"]
    body = {"task_id": task_id, "idempotency_key": str(uuid.uuid4()), "choice": 0, "strength": "better"}
    posts = [r for r in app.routes if isinstance(r, APIRoute) and "POST" in r.methods and r.path != "/login"]
    for route in posts:
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            r = c.post(_concrete(route.path), json=body, headers=headers)
            assert r.status_code == 403, (route.path, r.status_code, r.text)
    r = c.post("/admin/import", data={"project": "z", "kind": "pairwise", "csrf_token": "wrong"},
               files={"file": ("t.jsonl", b'{"prompt": "p", "completions": ["a", "b"]}\n')})
    assert r.status_code == 403
    # login itself is CSRF-protected (no login CSRF)
    anon = _client(app)
    assert anon.post("/login", data={"username": "ann1", "password": "pw1"}).status_code == 403
    # with the token everything works
    assert c.post("/api/label", json=body, headers={"X-CSRF-Token": csrf}).json()["ok"] is True


def test_annotator_isolation(app, log_in):
    c = _client(app)
    csrf = log_in(c, "outsider", "pw3")
    assert c.get("/projects/pw").status_code == 404
    assert c.get("/api/projects/pw/next").status_code == 404
    assert "pw" not in c.get("/").text.split("Your projects")[1]
    with TestClient(app) as member:
        log_in(member, "ann1", "pw1")
        task_id = member.get("/api/projects/pw/next").json()["task"]["id"]
    body = {"task_id": task_id, "idempotency_key": str(uuid.uuid4()), "choice": 0, "strength": "better"}
    assert c.post("/api/label", json=body, headers={"X-CSRF-Token": csrf}).status_code == 404
    assert c.post("/api/projects/pw/skip", json={"task_id": task_id}, headers={"X-CSRF-Token": csrf}).status_code == 404
    # admin-only: export, agreement page, import
    c2 = _client(app)
    csrf2 = log_in(c2, "ann1", "pw1")
    assert c2.get("/admin").status_code == 403
    assert c2.get("/admin/projects/pw/export.jsonl").status_code == 403
    r = c2.post("/admin/import", data={"project": "z", "kind": "pairwise", "csrf_token": csrf2},
                files={"file": ("t.jsonl", b'{"prompt": "p", "completions": ["a", "b"]}\n')})
    assert r.status_code == 403
    assert "Admin" not in c2.get("/").text


def test_script_payload_is_escaped(app, log_in, seeded):
    c = _client(app)
    log_in(c, "ann1", "pw1")
    with seeded["Session"]() as s:  # lease ann1 the task with the <script> prompt
        xss = s.scalar(select(Task.id).where(Task.prompt_json.contains("<script>")))
    for _ in range(3):
        html = c.get("/projects/pw").text
        if "alert(" in html:
            break
        c.post("/api/projects/pw/skip", json={"task_id": int(re.search(r'data-task="(\d+)"', html).group(1))},
               headers={"X-CSRF-Token": re.search(r'data-csrf="([^"]+)"', html).group(1)})
    assert re.search(r'data-task="(\d+)"', html).group(1) == str(xss)
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<b>there</b>" not in html and "&lt;b&gt;there&lt;/b&gt;" in html
    assert "script-src 'self'" in c.get("/projects/pw").headers["content-security-policy"]


def test_sql_looking_input_is_harmless(app, log_in, seeded):
    c = _client(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": "admin' OR '1'='1' --", "password": "' OR 1=1 --", "csrf_token": token})
    assert r.status_code == 401
    csrf = log_in(c, "admin", "admin-pw")
    assert c.get("/projects/pw' OR '1'='1").status_code == 404
    assert c.get("/api/projects/pw%3B DROP TABLE tasks/next").status_code == 404
    r = c.post("/api/label", json={"task_id": "1 OR 1=1", "idempotency_key": "x'; DROP TABLE labels;--",
                                   "choice": 0, "strength": "better"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400
    # the DROP TABLE completion is stored and exported verbatim, and nothing was dropped
    with seeded["Session"]() as s:
        assert s.scalar(select(func.count()).select_from(Task)) == 5
        assert s.scalar(select(func.count()).select_from(Label)) == 0


def test_http_export_is_the_cli_export(app, log_in, seeded, tmp_path):
    from alignstack.label.cli import main

    c = _client(app)
    csrf = log_in(c, "ann1", "pw1")
    task = c.get("/api/projects/pw/next").json()["task"]
    key = str(uuid.uuid4())
    body = {"task_id": task["id"], "idempotency_key": key, "choice": 1, "strength": "negligibly_better",
            "safe": [True, False], "duration_ms": 1234}
    ack = c.post("/api/label", json=body, headers={"X-CSRF-Token": csrf}).json()
    assert ack == {"ok": True, "label_id": ack["label_id"], "task_id": task["id"], "idempotency_key": key,
                   "duplicate": False}
    assert c.post("/api/label", json=body, headers={"X-CSRF-Token": csrf}).json()["duplicate"] is True
    admin = _client(app)
    log_in(admin, "admin", "admin-pw")
    r = admin.get("/admin/projects/pw/export.jsonl?aggregate=all")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    out = tmp_path / "cli.jsonl"
    assert main(["export", "--db", seeded["url"], "--project", "pw", "--out", str(out)]) == 0
    assert r.text == out.read_text()
    row = json.loads(r.text)
    assert row["chosen"] == [{"role": "assistant", "content": task["completions"][1]}] and row["rejected_safe"] is True and row["chosen_safe"] is False
    assert admin.get("/admin/projects/pw/export.jsonl?aggregate=bogus").status_code == 400
    page = admin.get("/admin").text
    assert "Krippendorff" in page and "nominal" in page and "ordinal" in page


def test_admin_http_import(app, log_in):
    c = _client(app)
    csrf = log_in(c, "admin", "admin-pw")
    r = c.post("/admin/import", data={"project": "up", "kind": "ranking", "labels_per_task": "1", "csrf_token": csrf},
               files={"file": ("t.jsonl", b'{"prompt": "p", "completions": ["a", "b"]}\n')})
    assert r.status_code == 303 and "Import+failed" in r.headers["location"] and "row+1" in r.headers["location"]
    r = c.post("/admin/import", data={"project": "up", "kind": "ranking", "labels_per_task": "2", "csrf_token": csrf},
               files={"file": ("t.jsonl", b'{"prompt": "p", "completions": ["a", "b", "c"]}\n')})
    assert "Imported+1+tasks" in r.headers["location"]
    assert "up" in c.get("/admin").text
