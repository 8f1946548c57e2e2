"""Handing out tasks under leases.

Rules (all enforced in the database, so several server workers or processes stay consistent):

- a task is leased to at most one annotator at a time; the lease expires ``ttl`` seconds after it
  was granted, and an expired lease is simply ignored (an abandoned task returns to the pool
  without any cleanup job);
- an annotator is only offered tasks that still need labels (fewer than the project's
  ``labels_per_task`` live labels), that they have not labeled and have not skipped;
- an annotator who already holds a live lease gets that same task back (reloading the page does
  not burn through tasks), unless they have labeled it since.

Acquisition is a conditional ``UPDATE ... WHERE (lease is free or expired or mine) AND
n_labels < labels_per_task``: the row count tells whether we won, so two concurrent requests can
never both get the same task. Every condition is on the task row itself, so PostgreSQL's
re-check after waiting for a row lock sees the winner's committed values (a subquery would be
evaluated against the statement's older snapshot).
"""
from __future__ import annotations

import time

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from .db import Label, Project, Skip, Task

DEFAULT_LEASE_SECONDS = 600.0


def lease_is_free(task: Task, user_id: int, now: float) -> bool:
    """True if ``user_id`` may take ``task`` now: nobody holds it, the lease expired, or it is theirs."""
    return task.lease_user_id is None or task.lease_user_id == user_id or (task.lease_expires or 0) <= now


def _not_done_by(user_id: int):
    mine = exists().where(Label.task_id == Task.id, Label.user_id == user_id, Label.undone_seq == 0)
    skipped = exists().where(Skip.task_id == Task.id, Skip.user_id == user_id)
    return and_(~mine, ~skipped)


def held_task(s: Session, project: Project, user_id: int, now: float) -> Task | None:
    """The task ``user_id`` currently holds a live lease on in ``project``, if any."""
    return s.scalars(
        select(Task).where(Task.project_id == project.id, Task.lease_user_id == user_id,
                           Task.lease_expires > now, _not_done_by(user_id))
        .order_by(Task.id).limit(1)).first()


def acquire_next(s: Session, project: Project, user_id: int, *, now: float | None = None,
                 ttl: float = DEFAULT_LEASE_SECONDS) -> Task | None:
    """Lease the next task for ``user_id`` (renewing a lease they already hold); None if none is left.

    The caller commits. Tasks are taken in import order, so partially labeled tasks are finished
    before fresh ones are started.
    """
    now = time.time() if now is None else now
    task = held_task(s, project, user_id, now)
    if task is not None:
        task.lease_expires = now + ttl
        s.flush()
        return task
    free = or_(Task.lease_user_id.is_(None), Task.lease_expires <= now)
    needs_labels = Task.n_labels < project.labels_per_task
    tried: list[int] = []
    while True:
        # SKIP LOCKED (PostgreSQL; SQLite ignores it and serializes writers anyway): a task another
        # request is grabbing right now is passed over instead of queued behind, so 20 annotators
        # asking at once do not convoy on the same first free row.
        task_id = s.scalar(
            select(Task.id).where(Task.project_id == project.id, free, needs_labels, _not_done_by(user_id),
                                  Task.id.not_in(tried))
            .order_by(Task.id).limit(1).with_for_update(skip_locked=True, of=Task))
        if task_id is None:
            return None
        won = s.execute(
            update(Task).where(Task.id == task_id, needs_labels,
                               or_(Task.lease_user_id.is_(None), Task.lease_expires <= now,
                                   Task.lease_user_id == user_id))
            .values(lease_user_id=user_id, lease_expires=now + ttl)
            .execution_options(synchronize_session=False)).rowcount
        if won == 1:
            return s.get(Task, task_id, populate_existing=True)
        tried.append(task_id)  # taken between our SELECT and UPDATE: look again


def release(s: Session, task: Task, user_id: int) -> None:
    """Give the task back to the pool if ``user_id`` holds it."""
    if task.lease_user_id == user_id:
        task.lease_user_id = None
        task.lease_expires = None


def skip(s: Session, task: Task, user_id: int, *, now: float | None = None) -> None:
    """Record that ``user_id`` passes on ``task`` and release their lease on it."""
    now = time.time() if now is None else now
    if s.scalar(select(Skip.id).where(Skip.task_id == task.id, Skip.user_id == user_id)) is None:
        s.add(Skip(task_id=task.id, user_id=user_id, created_at=now))
    release(s, task, user_id)
