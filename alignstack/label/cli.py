"""``alignstack label ...``: serve, init, import, export, user.

Every data or usage problem is printed as one ``error: ...`` line on stderr with exit code 2
(no traceback), e.g. ``error: tasks.jsonl, row 3, field 'completions': a pairwise project needs
exactly 2 completions per row, got 3``.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from alignstack.data.formats import DataError

from .leases import DEFAULT_LEASE_SECONDS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits; we want main() to return 2 instead
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="alignstack label", description="Human feedback labeling web app.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def db_arg(sp):
        sp.add_argument("--db", default=None,
                        help="database URL (default: $ALIGNSTACK_LABEL_DB or sqlite:///alignstack_label.db); "
                             "PostgreSQL: postgresql+psycopg://user@host/dbname")

    sp = sub.add_parser("serve", help="run the web app")
    db_arg(sp)
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_SECONDS,
                    help="how long a task stays reserved for the annotator who opened it")
    sp.add_argument("--secure-cookies", action="store_true", help="mark the session cookie Secure (behind HTTPS)")

    sp = sub.add_parser("init", help="create or upgrade the database")
    db_arg(sp)

    sp = sub.add_parser("import", help="load tasks from a samples JSONL file")
    db_arg(sp)
    sp.add_argument("--project", required=True)
    sp.add_argument("--kind", required=True, choices=("pairwise", "ranking"))
    sp.add_argument("--labels-per-task", type=int, default=1, help="how many annotators label each task")
    sp.add_argument("--instructions", default=None, help="instructions text, or @FILE to read them from a file")
    sp.add_argument("file")

    sp = sub.add_parser("export", help="write labels as preference/ranking JSONL")
    db_arg(sp)
    sp.add_argument("--project", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--aggregate", choices=("all", "majority"), default="all",
                    help="all: one row per label; majority: one row per task (see alignstack.label.export)")

    sp = sub.add_parser("user", help="manage accounts")
    usub = sp.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    ua = usub.add_parser("add", help="create a user (or reset its password/role)")
    db_arg(ua)
    ua.add_argument("name")
    ua.add_argument("--role", choices=("admin", "annotator"), default="annotator")
    ua.add_argument("--password", default=None,
                    help="password (default: $ALIGNSTACK_LABEL_PASSWORD, else asked interactively)")
    ua.add_argument("--projects", default="", help="comma-separated projects to make the user a member of")
    ul = usub.add_parser("list", help="list users and their projects")
    db_arg(ul)
    return p


def _password(args) -> str:
    pw = args.password or os.environ.get("ALIGNSTACK_LABEL_PASSWORD")
    if pw:
        return pw
    if not sys.stdin.isatty():
        raise ValueError("no password: pass --password or set ALIGNSTACK_LABEL_PASSWORD")
    pw = getpass.getpass(f"password for {args.name}: ")
    if pw != getpass.getpass("again: "):
        raise ValueError("passwords do not match")
    return pw


def _run(args) -> int:
    from . import accounts, projects
    from .db import open_db, resolve_url

    if args.command == "serve":
        import uvicorn

        from .app import create_app

        app = create_app(args.db, lease_seconds=args.lease_seconds, secure_cookies=args.secure_cookies)
        print(f"alignstack label: serving {resolve_url(args.db)} on http://{args.host}:{args.port}/", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0

    if args.command == "import":
        from alignstack.data.sources import read_text

        text = read_text(args.file)  # strict UTF-8: a bad byte is reported with file, row and offset
        rows = projects.parse_samples(text.splitlines(), args.kind, args.file)
        instructions = args.instructions
        if instructions and instructions.startswith("@"):
            instructions = read_text(instructions[1:])
        _, Session_ = open_db(args.db)
        with Session_.begin() as s:
            project = projects.get_or_create_project(s, args.project, args.kind, args.labels_per_task, instructions)
            n = projects.import_rows(s, project, rows)
        print(f"imported {n} {args.kind} tasks into project {args.project!r}")
        return 0

    _, Session_ = open_db(args.db)
    if args.command == "init":
        print(f"database ready: {resolve_url(args.db)}")
        return 0

    if args.command == "export":
        from sqlalchemy import select

        from .db import Project
        from .export import export_jsonl

        with Session_() as s:
            project = s.scalar(select(Project).where(Project.name == args.project))
            if project is None:
                raise ValueError(f"no project named {args.project!r}")
            n = 0
            out = Path(args.out)
            tmp = out.with_name(out.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for line in export_jsonl(s, project, args.aggregate):
                    f.write(line)
                    n += 1
            tmp.replace(out)
        print(f"wrote {n} rows to {args.out}")
        return 0

    if args.command == "user":
        if args.user_command == "list":
            with Session_() as s:
                for u, names in accounts.list_users(s):
                    print(f"{u.name}\t{u.role}\t{','.join(names)}")
            return 0
        names = [p.strip() for p in args.projects.split(",") if p.strip()]
        with Session_.begin() as s:
            accounts.add_user(s, args.name, args.role, _password(args), names)
        print(f"user {args.name!r} ({args.role}) saved" + (f", member of {', '.join(names)}" if names else ""))
        return 0
    raise ValueError(f"unknown command {args.command!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        return _run(args)
    except (DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a database that cannot be reached, etc.: still one clean line
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(e, SQLAlchemyError):
            print(f"error: database: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
