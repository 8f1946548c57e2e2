"""Hardening of the labeling app (issue 23): exactly-once undo under concurrency (both stores),
login throttling, bounded password hashing, server-side logout, request limits, integer ranges,
idempotency-key reuse with a different payload, and a fuzz run over the JSON API."""
from __future__ import annotations

import json
import threading
import uuid

from sqlalchemy import func, select

from alignstack.label import accounts, projects
from alignstack.label.db import Label, Project, Task, User
from alignstack.label.labels import LabelError, submit, undo_last

FAR = 10**9  # a 'now' after every lease: lets racing annotators label without taking leases first


def _race_project(S, n_tasks: int, n_users: int):
    with S.begin() as s:
        p = projects.get_or_create_project(s, "race", "pairwise", 1)
        projects.import_rows(s, p, projects.parse_samples(
            [json.dumps({"prompt": f"q{i}", "completions": ["a", "b"]}) for i in range(n_tasks)],
            "pairwise", "race.jsonl"))
        uids = [accounts.add_user(s, f"racer{i}", "annotator", "pw", ["race"]).id for i in range(n_users)]
        tids = list(s.scalars(select(Task.id).where(Task.project_id == p.id).order_by(Task.id)))
        return p.id, uids, tids


def _label(S, uid, tid, now=FAR):
    return submit(S, uid, {"task_id": tid, "idempotency_key": str(uuid.uuid4()), "choice": 0,
                           "strength": "better"}, now=now)


def _undo(S, pid, uid, now=FAR):
    with S.begin() as s:
        return undo_last(s, s.get(Project, pid), s.get(User, uid), now=now)


def _check_counts(S, pid) -> int:
    """Over-counted tasks: a counter that disagrees with the live labels, or more live labels than
    the project allows."""
    with S() as s:
        live = dict(s.execute(select(Label.task_id, func.count()).where(Label.project_id == pid,
                                                                          Label.undone_seq == 0)
                              .group_by(Label.task_id)).all())
        bad = 0
        for t in s.scalars(select(Task).where(Task.project_id == pid)):
            if t.n_labels != live.get(t.id, 0) or t.n_labels > 1 or t.n_labels < 0:
                bad += 1
        return bad


def _together(fns):
    """Run the callables in threads released at the same instant; returns (results, errors)."""
    barrier = threading.Barrier(len(fns))
    results, errors = [None] * len(fns), []

    def run(i, fn):
        barrier.wait()
        try:
            results[i] = fn()
        except LabelError as e:
            results[i] = e
        except Exception as e:  # noqa: BLE001 - any other failure is a bug the test reports
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def _rounds(url: str) -> int:
    return 200 if url.startswith("postgresql") else 20  # SQLite serializes writers; PG is the risk


def test_concurrent_undo_is_exactly_once(seeded):
    """Eight simultaneous undos of one label (a double-pressed 'u', many times over): exactly one
    retracts it, the task counter drops by one, never below the live labels."""
    S, rounds = seeded["Session"], _rounds(seeded["url"])
    pid, uids, tids = _race_project(S, rounds, 1)
    over = wins_total = 0
    for r in range(rounds):
        _label(S, uids[0], tids[r])
        results, errors = _together([lambda: _undo(S, pid, uids[0])] * 8)
        assert not errors, errors
        wins = sum(x is not None for x in results)
        wins_total += wins
        assert wins == 1, f"round {r}: {wins} undos succeeded"
        over += _check_counts(S, pid)
    print(f"8-way undo: {rounds} rounds on {seeded['url'].split(':')[0]}, {wins_total} undos won, "
          f"{over} over-counted tasks")
    assert over == 0


def test_undo_label_race_never_overfills(seeded):
    """An annotator double-presses undo while six others try to label the freed task at once
    (labels_per_task = 1): the task never ends with more live labels than allowed, and its counter
    always equals its live labels."""
    S, rounds = seeded["Session"], _rounds(seeded["url"])
    pid, uids, tids = _race_project(S, rounds, 7)
    owner, others = uids[0], uids[1:]
    over = 0
    for r in range(rounds):
        _label(S, owner, tids[r])
        fns = [lambda: _undo(S, pid, owner)] * 2 + [lambda u=u: _label(S, u, tids[r]) for u in others]
        results, errors = _together(fns)
        assert not errors, errors
        assert sum(x is not None for x in results[:2]) == 1, f"round {r}: both undos succeeded"
        over += _check_counts(S, pid)
    print(f"undo/label race: {rounds} rounds on {seeded['url'].split(':')[0]}, {over} over-counted tasks")
    assert over == 0
