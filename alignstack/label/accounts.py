"""Users, roles and project membership (who may see what)."""
from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from .auth import ROLES, dummy_hash, hash_password, verify_password
from .db import Membership, Project, User


class AccountError(ValueError):
    pass


def add_user(s: Session, name: str, role: str, password: str, projects: list[str] = ()) -> User:
    """Create ``name`` or update its role/password; add it to ``projects`` (which must exist)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("user name must be 1..100 characters")
    if role not in ROLES:
        raise AccountError(f"role must be one of {ROLES}, got {role!r}")
    if not password:
        raise AccountError("password must not be empty")
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role, password_hash=hash_password(password), created_at=time.time())
        s.add(user)
        s.flush()
    else:
        user.role, user.password_hash = role, hash_password(password)
    for pname in projects:
        add_member(s, user, pname)
    return user


def add_member(s: Session, user: User, project_name: str) -> None:
    project = s.scalar(select(Project).where(Project.name == project_name))
    if project is None:
        raise AccountError(f"no project named {project_name!r} (import tasks into it first)")
    if s.get(Membership, (user.id, project.id)) is None:
        s.add(Membership(user_id=user.id, project_id=project.id))
        s.flush()


def authenticate(s: Session, name: str, password: str) -> User | None:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        verify_password(password, dummy_hash())  # same cost as a real check: no user-name oracle
        return None
    return user if verify_password(password, user.password_hash) else None


def verify_login(Session_, name: str, password: str) -> int | None:
    """The user id if ``password`` is ``name``'s, else None; like :func:`authenticate`, but the
    (deliberately slow) hash runs after the database read is finished, so a login holds no
    connection or lock while it hashes: SQLite's single connection would otherwise queue every
    annotator behind each login (``/next`` went from 10 ms to 380 ms under a login burst)."""
    with Session_() as s:
        row = s.execute(select(User.id, User.password_hash).where(User.name == name)).first()
    if row is None:
        verify_password(password, dummy_hash())  # same cost as a real check: no user-name oracle
        return None
    return row.id if verify_password(password, row.password_hash) else None


def can_access(s: Session, user: User, project: Project) -> bool:
    """Admins see every project; annotators only those they are members of."""
    return user.role == "admin" or s.get(Membership, (user.id, project.id)) is not None


def visible_projects(s: Session, user: User) -> list[Project]:
    q = select(Project).order_by(Project.name)
    if user.role != "admin":
        q = q.join(Membership, Membership.project_id == Project.id).where(Membership.user_id == user.id)
    return list(s.scalars(q))


def list_users(s: Session) -> list[tuple[User, list[str]]]:
    out = []
    for u in s.scalars(select(User).order_by(User.name)):
        names = s.scalars(select(Project.name).join(Membership, Membership.project_id == Project.id)
                          .where(Membership.user_id == u.id).order_by(Project.name)).all()
        out.append((u, list(names)))
    return out
