"""The labeling web app (FastAPI, server-rendered Jinja2 pages, a little vanilla JS).

Security model, in one place:

- every route except ``GET/POST /login`` requires a signed session cookie (HttpOnly,
  SameSite=Lax); pages redirect to the login form, API calls get 401;
- every POST checks the per-session CSRF token (form field or ``X-CSRF-Token`` header) -> 403;
- annotators see only projects they are members of (others answer 404, as if absent); import,
  export and agreement are admin-only (403);
- all untrusted text reaches the page through Jinja autoescaping; the JS never writes user text
  with ``innerHTML``;
- OpenAPI docs are off (nothing is served that is not listed here);
- before routing, parsing or auth, bodies are capped (413) and JSON nesting is capped (400) by
  :class:`~alignstack.http_limits.RequestLimits`; integers are range-checked before they reach
  the database; every bad input is a 4xx in the app's error shape (``{"ok": false, "error"}``);
- failed logins back off per account and per address (429), at most ``HASH_SLOTS`` password
  hashes run at once (a login flood cannot starve annotators of CPU), and logout revokes the
  session server-side.

Routes are plain ``def`` (run in the threadpool) because the database layer is synchronous.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from alignstack.data.formats import STRENGTHS, DataError
from alignstack.data.sources import decode_utf8
from alignstack.http_limits import RequestLimits

from . import accounts, auth, leases, projects
from .agreement import project_agreement
from .db import Project, RevokedSession, Setting, Task, User, open_db
from .export import AGGREGATIONS, export_jsonl
from .labels import LabelError, id_or_none, submit, undo_last

HERE = Path(__file__).parent
STRENGTH_KEYS = dict(zip(STRENGTHS, "asdf"))
STRENGTH_TEXT = {"significantly_better": "Significantly better", "better": "Better",
                 "slightly_better": "Slightly better", "negligibly_better": "Negligibly better / unsure"}
PUBLIC_PATHS = {"/login"}
MAX_BODY_BYTES = 256 << 10      # every JSON call and form is tiny; refused (413) before it is read in full
MAX_IMPORT_BYTES = 32 << 20     # the admin's samples upload
MAX_JSON_DEPTH = 32             # a label is 2 levels deep
HASH_SLOTS = 2                  # scrypt hashes running at once (16 MiB and ~50 ms of CPU each)
HASH_QUEUE = 64                 # logins hashing or waiting to (on the event loop); more get 503 at once
MAX_PASSWORD = 1024


class LoginRequired(Exception):
    pass


def _secret(Session_: sessionmaker) -> str:
    """The cookie-signing secret, created on first start and kept in the database."""
    with Session_.begin() as s:
        row = s.get(Setting, "session_secret")
        if row is None:
            row = Setting(key="session_secret", value=auth.new_secret())
            s.add(row)
        return row.value


def _pw_version(user: User) -> str:
    """Changes when the password does: a password reset logs out every old session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def create_app(db_url: str | None = None, *, lease_seconds: float = leases.DEFAULT_LEASE_SECONDS,
               secure_cookies: bool = False) -> FastAPI:
    engine, Session_ = open_db(db_url)
    secret = _secret(Session_)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    templates = Jinja2Templates(env=env)
    app = FastAPI(title="alignstack label", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.Session = engine, Session_
    throttle = app.state.login_throttle = auth.LoginThrottle()
    hash_slots = threading.BoundedSemaphore(HASH_SLOTS)
    hash_waiting = [0]
    hash_lock = threading.Lock()

    def render_limit_error(status: int, message: str) -> tuple[bytes, str]:
        return json.dumps({"ok": False, "error": message}).encode(), "application/json"

    app.add_middleware(RequestLimits, render=render_limit_error, max_body=MAX_BODY_BYTES,
                       max_depth=MAX_JSON_DEPTH, path_limits={"/admin/import": MAX_IMPORT_BYTES})

    # --- sessions -------------------------------------------------------------------------
    def session_of(request: Request) -> dict | None:
        return auth.load_session(request.cookies.get(auth.SESSION_COOKIE), secret)

    def set_session(resp: Response, data: dict) -> None:
        resp.set_cookie(auth.SESSION_COOKIE, auth.sign_session(data, secret), max_age=auth.SESSION_MAX_AGE,
                        httponly=True, samesite="lax", secure=secure_cookies, path="/")

    def current_user(request: Request, s) -> tuple[User, dict]:
        sess = session_of(request)
        uid = id_or_none(sess.get("uid")) if sess else None
        user = s.get(User, uid) if uid is not None else None
        if user is None or sess.get("pwv") != _pw_version(user) or not isinstance(sess.get("sid"), str):
            raise LoginRequired()
        if s.get(RevokedSession, sess["sid"][:64]) is not None:  # logged out: the cookie is dead everywhere
            raise LoginRequired()
        return user, sess

    async def check_password(username: str, password: str) -> int | None | str:
        """The user id, None for a wrong name or password, or "busy" when too many logins queue.

        A login waits for one of HASH_SLOTS on the event loop, holding no worker thread (the
        threads serve annotators), and only then hashes in the threadpool. The semaphore is a
        threading one polled without blocking, so it works whichever event loop runs the request."""
        with hash_lock:
            if hash_waiting[0] >= HASH_QUEUE:
                return "busy"
            hash_waiting[0] += 1
        try:
            while not hash_slots.acquire(blocking=False):
                await asyncio.sleep(0.01)
            try:
                return await run_in_threadpool(accounts.verify_login, Session_, username, password)
            finally:
                hash_slots.release()
        finally:
            with hash_lock:
                hash_waiting[0] -= 1

    def new_session(uid: int) -> dict:
        with Session_() as s:
            user = s.get(User, uid)
            return {"uid": user.id, "pwv": _pw_version(user), "csrf": auth.new_csrf_token(), "iat": time.time(),
                    "sid": auth.new_session_id()}

    def require_csrf(request: Request, sess: dict, form_token: str | None = None) -> None:
        token = form_token or request.headers.get("x-csrf-token")
        if not auth.csrf_ok(sess, token):
            raise HTTPException(403, "missing or wrong CSRF token")

    def project_for(s, user: User, name: str) -> Project:
        if not projects.PROJECT_NAME_RE.match(name):  # e.g. a NUL byte, which PostgreSQL rejects with a 500
            raise HTTPException(404, "no such project")
        project = s.scalar(select(Project).where(Project.name == name))
        if project is None or not accounts.can_access(s, user, project):
            raise HTTPException(404, "no such project")
        return project

    def require_admin(user: User) -> None:
        if user.role != "admin":
            raise HTTPException(403, "admins only")

    def page(request: Request, name: str, user: User | None, sess: dict, status: int = 200, **ctx):
        resp = templates.TemplateResponse(request, name, {"user": user, "csrf": sess["csrf"], **ctx},
                                          status_code=status)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, _exc: LoginRequired):
        if request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"ok": False, "error": "login required"}, status_code=401)

    @app.exception_handler(HTTPException)
    def _http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"ok": False, "error": exc.detail}, status_code=exc.status_code)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
        return resp

    # --- login ----------------------------------------------------------------------------
    @app.get("/login")
    def login_form(request: Request):
        sess = session_of(request) or {"uid": None, "csrf": auth.new_csrf_token(), "iat": time.time()}
        resp = page(request, "login.html", None, sess, error=None)
        set_session(resp, sess)
        return resp

    @app.post("/login")
    async def login(request: Request, username: str = Form(""), password: str = Form(""),
                    csrf_token: str = Form("")):
        sess = session_of(request)
        require_csrf(request, sess, csrf_token)
        address = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(username, address)
        if wait > 0:  # refused before any hashing: guessing costs the server nothing while locked
            resp = page(request, "login.html", None, sess, status=429,
                        error=f"Too many failed logins. Try again in {int(wait) + 1} s.")
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        plausible = len(password) <= MAX_PASSWORD and len(username) <= 100 and "\x00" not in username + password
        uid = await check_password(username, password) if plausible else None  # NUL: a PostgreSQL 500, never a user
        if uid == "busy":
            resp = page(request, "login.html", None, sess, status=503, error="The server is busy. Try again shortly.")
            resp.headers["Retry-After"] = "1"
            return resp
        if uid is None:
            throttle.failed(username, address)
            return page(request, "login.html", None, sess, status=401, error="Wrong user name or password.")
        throttle.succeeded(username)
        new = await run_in_threadpool(new_session, uid)
        resp = RedirectResponse("/", status_code=303)
        set_session(resp, new)  # fresh token on login: no session fixation
        return resp

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")):
        with Session_() as s:
            _user, sess = current_user(request, s)
        require_csrf(request, sess, csrf_token)
        now = time.time()
        with Session_.begin() as s:
            s.query(RevokedSession).filter(RevokedSession.expires < now).delete()  # past their max age anyway
            if s.get(RevokedSession, sess["sid"][:64]) is None:
                s.add(RevokedSession(sid=sess["sid"][:64], expires=float(sess["iat"]) + auth.SESSION_MAX_AGE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(auth.SESSION_COOKIE, path="/")
        return resp

    # --- annotator pages ------------------------------------------------------------------
    @app.get("/")
    def index(request: Request):
        with Session_() as s:
            user, sess = current_user(request, s)
            rows = [(p, projects.progress(s, p, user)) for p in accounts.visible_projects(s, user)]
            return page(request, "index.html", user, sess, rows=rows)

    @app.get("/static/label.js")
    def script(request: Request):
        with Session_() as s:
            current_user(request, s)
        return Response((HERE / "static" / "label.js").read_text(), media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/projects/{name}")
    def label_page(request: Request, name: str):
        with Session_.begin() as s:
            user, sess = current_user(request, s)
            project = project_for(s, user, name)
            task = leases.acquire_next(s, project, user.id, ttl=lease_seconds)
            prog = projects.progress(s, project, user)
            template = "pairwise.html" if project.kind == "pairwise" else "ranking.html"
            return page(request, template, user, sess, project=project, task=task, progress=prog,
                        strengths=[(k, STRENGTH_KEYS[k], STRENGTH_TEXT[k]) for k in STRENGTHS],
                        lease_seconds=int(lease_seconds))

    # --- JSON API (used by the page's JS and by scripted clients) ----------------------------
    def task_json(task: Task | None) -> dict | None:
        if task is None:
            return None
        return {"id": task.id, "prompt": task.prompt, "completions": task.completions,
                "lease_expires": task.lease_expires}

    @app.get("/api/projects/{name}/next")
    def api_next(request: Request, name: str):
        with Session_.begin() as s:
            user, sess = current_user(request, s)
            project = project_for(s, user, name)
            task = leases.acquire_next(s, project, user.id, ttl=lease_seconds)
            prog = projects.progress(s, project, user)
            return {"ok": True, "project": project.name, "kind": project.kind, "task": task_json(task),
                    "progress": prog.__dict__, "csrf": sess["csrf"]}

    async def json_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, RecursionError):  # RecursionError: only if the depth limit were raised a lot
            raise HTTPException(400, "body must be JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be a JSON object")
        return body

    @app.post("/api/label")
    async def api_label(request: Request):
        body = await json_body(request)
        return await run_in_threadpool(_label, request, body)

    def _label(request: Request, body: dict):
        with Session_() as s:
            user, sess = current_user(request, s)
            user_id = user.id
        require_csrf(request, sess)
        try:
            ack = submit(Session_, user_id, body, may_access=accounts.can_access)
        except LabelError as e:
            return JSONResponse({"ok": False, "error": str(e)}, status_code=e.status)
        return ack.as_json()

    @app.post("/api/projects/{name}/skip")
    async def api_skip(request: Request, name: str):
        body = await json_body(request)
        return await run_in_threadpool(_skip, request, name, body)

    def _skip(request: Request, name: str, body: dict):
        with Session_.begin() as s:
            user, sess = current_user(request, s)
            require_csrf(request, sess)
            project = project_for(s, user, name)
            tid = id_or_none(body.get("task_id"))
            task = s.get(Task, tid) if tid is not None else None
            if task is None or task.project_id != project.id:
                raise HTTPException(404, "no such task")
            leases.skip(s, task, user.id)
            return {"ok": True}

    @app.post("/api/projects/{name}/undo")
    async def api_undo(request: Request, name: str):
        body = await json_body(request)
        return await run_in_threadpool(_undo, request, name, body)

    def _undo(request: Request, name: str, body: dict):
        with Session_.begin() as s:
            user, sess = current_user(request, s)
            require_csrf(request, sess)
            project = project_for(s, user, name)
            tid = id_or_none(body.get("task_id"))
            current = s.get(Task, tid) if tid is not None else None
            label = undo_last(s, project, user, ttl=lease_seconds)
            if label is None:
                return {"ok": False, "error": "nothing to undo"}
            if current is not None and current.project_id == project.id and current.id != label.task_id:
                leases.release(s, current, user.id)  # the undone task is shown next instead
            return {"ok": True, "label_id": label.id, "task_id": label.task_id}

    # --- admin ------------------------------------------------------------------------------
    @app.get("/admin")
    def admin(request: Request, message: str = ""):
        with Session_() as s:
            user, sess = current_user(request, s)
            require_admin(user)
            rows = [(p, projects.progress(s, p), project_agreement(s, p))
                    for p in s.scalars(select(Project).order_by(Project.name))]
            return page(request, "admin.html", user, sess, rows=rows, users=accounts.list_users(s),
                        message=message, aggregations=AGGREGATIONS)

    @app.get("/admin/projects/{name}/export.jsonl")
    def admin_export(request: Request, name: str, aggregate: str = "all", inline: str = ""):
        with Session_() as s:
            user, _sess = current_user(request, s)
            require_admin(user)
            project = project_for(s, user, name)
            if aggregate not in AGGREGATIONS:
                raise HTTPException(400, f"aggregate must be one of {AGGREGATIONS}")
            body = "".join(export_jsonl(s, project, aggregate))
        if inline in ("1", "true", "yes"):  # shown in the browser as text instead of downloaded
            return PlainTextResponse(body, headers={"Cache-Control": "no-store"})
        fname = f"{project.name}-{aggregate}.jsonl".replace('"', "")
        return StreamingResponse(iter([body]), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{fname}"',
                                          "Cache-Control": "no-store"})

    @app.post("/admin/import")
    def admin_import(request: Request, project: str = Form(""), kind: str = Form(""),
                     labels_per_task: str = Form("1"), csrf_token: str = Form(""),
                     file: Annotated[UploadFile | None, File()] = None):
        with Session_() as s:
            user, sess = current_user(request, s)
        require_csrf(request, sess, csrf_token)
        require_admin(user)
        if file is None or not labels_per_task.isdigit():
            raise HTTPException(400, "a file and a numeric labels per task are required")
        try:
            text = decode_utf8(file.file.read(), file.filename or "upload.jsonl")
            rows = projects.parse_samples(text.splitlines(), kind, file.filename or "upload.jsonl")
            with Session_.begin() as s:
                p = projects.get_or_create_project(s, project, kind, int(labels_per_task))
                n = projects.import_rows(s, p, rows)
            msg = f"Imported {n} tasks into {project}."
        except (DataError, ValueError) as e:
            msg = f"Import failed: {e}"
        return RedirectResponse("/admin?" + urlencode({"message": msg}), status_code=303)

    return app
