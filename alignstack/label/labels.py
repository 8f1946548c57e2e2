"""Recording labels exactly once, and undoing them.

A submission carries a client-generated idempotency key (uuid4, one per task view). The label
is acknowledged only after its transaction commits; a retry with the same key (the network
dropped the answer, the server was killed, the user double-clicked) returns the original
acknowledgement. The UNIQUE constraint on the key is the final arbiter: if two copies race, one
insert fails, is rolled back, and the loser reads and returns the winner's row.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from alignstack.data.formats import STRENGTHS

from .db import Label, Project, Task, User
from .leases import lease_is_free

_KEY_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
MAX_DB_INT = 2**31 - 1  # PostgreSQL INTEGER; larger values overflow SQLite's driver too (a 500, before)


def id_or_none(value) -> int | None:
    """``value`` if it is a plausible row id (an int in 1..MAX_DB_INT), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DB_INT:
        return None
    return value


class LabelError(ValueError):
    """A submission that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Ack:
    label_id: int
    task_id: int
    idempotency_key: str
    duplicate: bool

    def as_json(self) -> dict:
        return {"ok": True, "label_id": self.label_id, "task_id": self.task_id,
                "idempotency_key": self.idempotency_key, "duplicate": self.duplicate}


def check_payload(project: Project, task: Task, payload: dict) -> dict:
    """Column values for a label of ``task`` from the client's JSON, or LabelError."""
    k = len(task.completions)
    safe = payload.get("safe", [True] * k)
    if not isinstance(safe, list) or len(safe) != k or not all(isinstance(b, bool) for b in safe):
        raise LabelError(f"'safe' must be a list of {k} booleans")
    duration = payload.get("duration_ms")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)
                                 or not 0 <= duration <= MAX_DB_INT):
        raise LabelError(f"'duration_ms' must be an integer in 0..{MAX_DB_INT}")
    out = {"safe_json": json.dumps(safe), "duration_ms": duration, "choice": None, "strength": None,
           "ranking_json": None}
    if project.kind == "pairwise":
        choice, strength = payload.get("choice"), payload.get("strength")
        if choice not in (0, 1) or isinstance(choice, bool):
            raise LabelError("'choice' must be 0 (first response better) or 1 (second)")
        if strength not in STRENGTHS:
            raise LabelError(f"'strength' must be one of {list(STRENGTHS)}")
        out.update(choice=choice, strength=strength)
    else:
        ranking = payload.get("ranking")
        if (not isinstance(ranking, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in ranking)
                or sorted(ranking) != list(range(k))):
            raise LabelError(f"'ranking' must be a permutation of 0..{k - 1}, best first")
        out["ranking_json"] = json.dumps(ranking)
    return out


_SAME_LABEL = ("choice", "strength", "ranking_json", "safe_json")  # duration may differ on a retry


def _existing(s: Session, key: str, user: User, payload: dict) -> Ack | None:
    """The acknowledgement of an earlier submission with ``key``, if any. A key reused for a
    different label (another task, another choice) is a client bug, not a retry: 409, rather than
    silently answering with the first label's acknowledgement."""
    label = s.scalar(select(Label).where(Label.idempotency_key == key))
    if label is None:
        return None
    if label.user_id != user.id:
        raise LabelError("idempotency key already used by another user", status=409)
    conflict = LabelError("idempotency key already used for a different label", status=409)
    if payload.get("task_id") != label.task_id:
        raise conflict
    task = s.get(Task, label.task_id)
    try:
        values = check_payload(s.get(Project, task.project_id), task, payload)
    except LabelError:
        raise conflict from None
    if any(values[k] != getattr(label, k) for k in _SAME_LABEL):
        raise conflict
    return Ack(label.id, label.task_id, key, duplicate=True)


def submit(Session_: sessionmaker, user_id: int, payload: dict, *, now: float | None = None,
           may_access=None) -> Ack:
    """Store one label from ``payload`` (``task_id``, ``idempotency_key`` and the label fields).

    Runs its own transaction(s) so it can recover from a unique-constraint race. ``may_access``
    is ``f(session, user, project) -> bool`` (project membership); the caller supplies it.
    """
    key = payload.get("idempotency_key")
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise LabelError("'idempotency_key' must be 8..64 characters of [A-Za-z0-9-] (a uuid4)")
    task_id = payload.get("task_id")
    if id_or_none(task_id) is None:
        raise LabelError(f"'task_id' must be an integer in 1..{MAX_DB_INT}")
    now = time.time() if now is None else now
    try:
        with Session_.begin() as s:
            user = s.get(User, user_id)
            ack = _existing(s, key, user, payload)
            if ack is not None:
                return ack
            task = s.get(Task, task_id)
            project = s.get(Project, task.project_id) if task is not None else None
            if task is None or (may_access is not None and not may_access(s, user, project)):
                raise LabelError("no such task", status=404)
            values = check_payload(project, task, payload)
            mine = s.scalar(select(Label.id).where(Label.task_id == task.id, Label.user_id == user.id,
                                                   Label.undone_seq == 0))
            if mine is not None:
                raise LabelError("you already labeled this task", status=409)
            # Count the label and drop the lease in one conditional UPDATE of the task row: it fails
            # (0 rows) if someone else holds a live lease or the task already has its labels.
            won = s.execute(
                update(Task).where(Task.id == task.id, Task.n_labels < project.labels_per_task,
                                   or_(Task.lease_user_id.is_(None), Task.lease_user_id == user.id,
                                       Task.lease_expires <= now))
                .values(n_labels=Task.n_labels + 1, lease_user_id=None, lease_expires=None)
                .execution_options(synchronize_session=False)).rowcount
            if won != 1:
                s.refresh(task)
                if not lease_is_free(task, user.id, now):
                    raise LabelError("this task is leased to another annotator (your lease expired)", status=409)
                raise LabelError("this task already has all the labels it needs", status=409)
            label = Label(idempotency_key=key, task_id=task.id, project_id=project.id, user_id=user.id,
                          undone_seq=0, created_at=now, **values)
            s.add(label)
            s.flush()
            ack = Ack(label.id, task.id, key, duplicate=False)
        return ack  # only now, after COMMIT succeeded
    except (IntegrityError, LabelError) as e:
        # A conflict may be our own twin: a concurrent copy of this very submission that committed
        # after our first look-up (PostgreSQL's READ COMMITTED shows it to later statements).
        if isinstance(e, LabelError) and e.status != 409:
            raise
        with Session_.begin() as s:
            ack = _existing(s, key, s.get(User, user_id), payload)
        if ack is not None:
            return ack
        if isinstance(e, LabelError):
            raise
        raise LabelError("you already labeled this task", status=409) from None


def undo_last(s: Session, project: Project, user: User, *, now: float | None = None,
              ttl: float = 600.0) -> Label | None:
    """Retract ``user``'s most recent live label in ``project`` and lease its task back to them.

    The row is kept (so a late retry of that submission still answers with its acknowledgement)
    and excluded from counts and exports. Returns the undone label, or None if there is nothing
    to undo. The caller commits.

    Exactly once under concurrency: the retraction is a conditional ``UPDATE ... WHERE undone_seq
    = 0`` and only the request whose UPDATE changed the row decrements the task's counter. On
    PostgreSQL a concurrent undo of the same label waits for the winner's row lock, re-checks the
    condition against the committed row and changes nothing (an ORM attribute write would have
    updated it again, and eight simultaneous undos drove the counter to -15). A loser answers
    "nothing to undo": a double-pressed undo retracts one label, not two.
    """
    now = time.time() if now is None else now
    label = s.scalar(select(Label).where(Label.project_id == project.id, Label.user_id == user.id,
                                         Label.undone_seq == 0)
                     .order_by(Label.created_at.desc(), Label.id.desc()).limit(1))
    if label is None:
        return None
    won = s.execute(update(Label).where(Label.id == label.id, Label.undone_seq == 0)
                    .values(undone_seq=label.id).execution_options(synchronize_session=False)).rowcount
    if won != 1:
        return None
    s.refresh(label)
    s.execute(update(Task).where(Task.id == label.task_id, Task.n_labels > 0).values(n_labels=Task.n_labels - 1)
              .execution_options(synchronize_session=False))
    # hand the task straight back to its annotator unless someone else holds it now
    s.execute(update(Task).where(Task.id == label.task_id,
                                 or_(Task.lease_user_id.is_(None), Task.lease_user_id == user.id,
                                     Task.lease_expires <= now))
              .values(lease_user_id=user.id, lease_expires=now + ttl)
              .execution_options(synchronize_session=False))
    return label
