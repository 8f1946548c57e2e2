"""Leases, exactly-once labels, undo, progress and export, on SQLite and (when configured) PostgreSQL."""
import threading
import uuid

import pytest
from sqlalchemy import func, select

from alignstack.data.formats import validate_row
from alignstack.label import leases
from alignstack.label.db import Label, Project, Task, User
from alignstack.label.export import borda, export_rows
from alignstack.label.labels import LabelError, submit, undo_last
from alignstack.label.projects import progress


def _ids(s):
    users = {u.name: u.id for u in s.scalars(select(User))}
    projs = {p.name: p for p in s.scalars(select(Project))}
    return users, projs


def _acquire(Session_, project_name, user_id, now, ttl=60.0):
    with Session_.begin() as s:
        p = s.scalar(select(Project).where(Project.name == project_name))
        t = leases.acquire_next(s, p, user_id, now=now, ttl=ttl)
        return None if t is None else t.id


def _label(Session_, uid, task_id, choice=0, strength="better", key=None, now=None, safe=(True, True)):
    return submit(Session_, uid, {"task_id": task_id, "idempotency_key": key or str(uuid.uuid4()),
                                  "choice": choice, "strength": strength, "safe": list(safe)}, now=now)


def test_lease_is_free_rule():
    t = Task(lease_user_id=None, lease_expires=None)
    assert leases.lease_is_free(t, 1, now=0.0)
    t.lease_user_id, t.lease_expires = 2, 100.0
    assert not leases.lease_is_free(t, 1, now=99.9)  # held by someone else, still live
    assert leases.lease_is_free(t, 2, now=99.9)  # my own lease
    assert leases.lease_is_free(t, 1, now=100.0)  # expired: back in the pool


def test_lease_exclusive_and_expiry(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    a, b = users["ann1"], users["ann2"]
    t0 = 1000.0
    ta = _acquire(S, "pw", a, t0)
    tb = _acquire(S, "pw", b, t0)
    assert ta != tb  # never the same task to two annotators at once
    assert _acquire(S, "pw", a, t0 + 10) == ta  # reload: same task, lease renewed until t0+70
    # ann1 walks away; before expiry ann2 (after labeling their own task) cannot get it ...
    _label(S, b, tb, now=t0 + 20)
    t_next = _acquire(S, "pw", b, t0 + 20)
    assert t_next not in (ta, tb)
    _label(S, b, t_next, now=t0 + 21)
    assert _acquire(S, "pw", b, t0 + 22) is None  # only ta is left and ann1 holds it
    # ... after expiry the abandoned task returns to the pool
    assert _acquire(S, "pw", b, t0 + 71) == ta
    # ann1's stale submission for ta is now refused (someone else holds it)
    with pytest.raises(LabelError) as e:
        _label(S, a, ta, now=t0 + 72)
    assert e.value.status == 409


def test_never_the_same_task_twice_and_labels_per_task(seeded):
    S = seeded["Session"]
    with S() as s:
        users, projs = _ids(s)
        n_tasks = s.scalar(select(func.count()).select_from(Task).where(Task.project_id == projs["pw"].id))
    a, b, adm = users["ann1"], users["ann2"], users["admin"]
    seen = []
    now = 5000.0
    while (t := _acquire(S, "pw", a, now)) is not None:
        seen.append(t)
        _label(S, a, t, now=now)
        now += 1
    assert sorted(seen) == sorted(set(seen)) and len(seen) == n_tasks
    with pytest.raises(LabelError) as e:  # a second label on the same task by the same user
        _label(S, a, seen[0], now=now)
    assert e.value.status == 409
    for _ in range(n_tasks):
        _label(S, b, _acquire(S, "pw", b, now), now=now)
    # labels_per_task = 2 reached everywhere: nothing left even for a third annotator
    assert _acquire(S, "pw", adm, now) is None
    with S() as s:
        prog = progress(s, s.get(Project, projs["pw"].id))
    assert (prog.tasks, prog.complete, prog.labels, prog.target) == (n_tasks, n_tasks, 2 * n_tasks, 2 * n_tasks)


def test_concurrent_acquire_never_shares_a_task(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    got, errors = {}, []

    def worker(name):
        try:
            got[name] = _acquire(S, "rk", users[name], 100.0)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("ann1", "ann2", "admin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    taken = [v for v in got.values() if v is not None]
    assert len(taken) == 2 and len(set(taken)) == 2  # 2 ranking tasks, 3 annotators: one gets None


def test_skip_releases_and_is_not_offered_again(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    a = users["ann1"]
    t1 = _acquire(S, "rk", a, 10.0)
    with S.begin() as s:
        leases.skip(s, s.get(Task, t1), a, now=11.0)
    t2 = _acquire(S, "rk", a, 12.0)
    assert t2 != t1
    assert _acquire(S, "rk", users["ann2"], 12.0) == t1  # released to the others


def test_idempotent_submit(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    a = users["ann1"]
    t = _acquire(S, "pw", a, 0.0)
    key = str(uuid.uuid4())
    first = _label(S, a, t, key=key, now=1.0)
    again = _label(S, a, t, key=key, now=2.0)
    assert not first.duplicate and again.duplicate and again.label_id == first.label_id
    with S() as s:
        assert s.scalar(select(func.count()).select_from(Label).where(Label.idempotency_key == key)) == 1
    with pytest.raises(LabelError) as e:  # someone else replaying the key gets nothing
        _label(S, users["ann2"], t, key=key)
    assert e.value.status == 409


def test_concurrent_retries_of_one_key_make_one_label(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    a = users["ann1"]
    t = _acquire(S, "pw", a, 0.0)
    key = str(uuid.uuid4())
    acks, errors = [], []

    def worker():
        try:
            acks.append(_label(S, a, t, key=key, now=1.0))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len({ack.label_id for ack in acks}) == 1 and sum(not ack.duplicate for ack in acks) == 1


def test_payload_validation(seeded):
    S = seeded["Session"]
    with S() as s:
        users, _ = _ids(s)
    a = users["ann1"]
    t = _acquire(S, "pw", a, 0.0)
    bad = [{"choice": 2, "strength": "better"}, {"choice": 0, "strength": "much_better"},
           {"choice": True, "strength": "better"}, {"choice": 0, "strength": "better", "safe": [True]}]
    for extra in bad:
        with pytest.raises(LabelError):
            submit(S, a, {"task_id": t, "idempotency_key": str(uuid.uuid4()), **extra})
    with pytest.raises(LabelError):
        submit(S, a, {"task_id": t, "idempotency_key": "short", "choice": 0, "strength": "better"})
    r = _acquire(S, "rk", a, 0.0)
    for ranking in ([0, 1, 2], [0, 1, 2, 2], [3, 2, 1, 0, 4], "0123"):
        with pytest.raises(LabelError):
            submit(S, a, {"task_id": r, "idempotency_key": str(uuid.uuid4()), "ranking": ranking})


def test_undo_retracts_and_hands_the_task_back(seeded):
    S = seeded["Session"]
    with S() as s:
        users, projs = _ids(s)
    a = users["ann1"]
    t = _acquire(S, "pw", a, 0.0)
    key = str(uuid.uuid4())
    ack = _label(S, a, t, choice=1, key=key, now=1.0)
    assert _acquire(S, "pw", a, 2.0) != t
    with S.begin() as s:
        undone = undo_last(s, s.get(Project, projs["pw"].id), s.get(User, a), now=3.0)
        assert undone.id == ack.label_id
    assert _acquire(S, "pw", a, 4.0) == t  # the undone task comes back first
    assert _label(S, a, t, choice=1, key=key).duplicate  # a late retry of the undone submission stays a no-op
    with S() as s:
        assert progress(s, s.get(Project, projs["pw"].id), s.get(User, a)).mine == 0
        assert list(export_rows(s, s.get(Project, projs["pw"].id))) == []
    relabel = _label(S, a, t, choice=0, now=5.0)  # label it again, now allowed
    with S() as s:
        rows = list(export_rows(s, s.get(Project, projs["pw"].id)))
    assert [r["meta"]["label_id"] for r in rows] == [relabel.label_id]


def test_export_rows_validate_and_majority(seeded):
    S = seeded["Session"]
    with S() as s:
        users, projs = _ids(s)
    a, b = users["ann1"], users["ann2"]
    t = _acquire(S, "pw", a, 0.0)
    _label(S, a, t, choice=1, strength="slightly_better", safe=(True, False), now=1.0)
    assert _acquire(S, "pw", b, 2.0) == t
    _label(S, b, t, choice=0, strength="significantly_better", now=3.0)
    r = _acquire(S, "rk", a, 0.0)
    submit(S, a, {"task_id": r, "idempotency_key": str(uuid.uuid4()), "ranking": [3, 0, 1, 2],
                  "safe": [True, True, False, True]})
    with S() as s:
        pw, rk = s.get(Project, projs["pw"].id), s.get(Project, projs["rk"].id)
        rows = list(export_rows(s, pw, "all"))
        maj = list(export_rows(s, pw, "majority"))
        rrows = list(export_rows(s, rk, "all"))
        rmaj = list(export_rows(s, rk, "majority"))
        task = s.get(Task, t)
        comps = task.completions
    for row in rows + maj:
        validate_row("preference", row)
    for row in rrows + rmaj:
        validate_row("ranking", row)
    assert [r["annotator"] for r in rows] == ["ann1", "ann2"]
    r0 = rows[0]
    assert (r0["chosen"], r0["rejected"], r0["strength"]) == (comps[1], comps[0], "slightly_better")
    assert (r0["chosen_safe"], r0["rejected_safe"]) == (False, True)
    assert r0["meta"]["task_id"] == t and r0["meta"]["project"] == "pw" and "label_id" in r0["meta"]
    assert r0["meta"]["src"] == task.meta["src"] and r0["prompt"][-1]["role"] == "user"
    # 1-1 tie: the earliest label (ann1 chose response 2) wins; its strength stands alone
    assert len(maj) == 1 and maj[0]["chosen"] == comps[1] and maj[0]["strength"] == "slightly_better"
    assert maj[0]["chosen_safe"] is False and maj[0]["meta"]["annotators"] == ["ann1", "ann2"]
    assert rrows[0]["ranking"] == [3, 0, 1, 2] and rrows[0]["safe"] == [True, True, False, True]
    assert rrows[0]["responses"][3] == "2" and rmaj[0]["ranking"] == [3, 0, 1, 2]


def test_borda():
    assert borda([[0, 1, 2], [1, 0, 2], [0, 2, 1]]) == [0, 1, 2]  # points: 0->5, 1->3, 2->1
    assert borda([[0, 1, 2], [1, 0, 2]]) == [0, 1, 2]  # 0 and 1 tie on 3: first ranking's order


def test_concurrent_annotators_never_overfill_a_task(seeded):
    """Threads of distinct annotators acquire and label as fast as they can (labels_per_task = 1):
    every submission must succeed and no task may get two labels. Caught a real PostgreSQL race."""
    import json as _json

    from alignstack.label import accounts, projects

    S = seeded["Session"]
    n_users, per_user = 6, 8
    with S.begin() as s:
        p = projects.get_or_create_project(s, "race", "pairwise", 1)
        projects.import_rows(s, p, projects.parse_samples(
            [_json.dumps({"prompt": f"q{i}", "completions": ["a", "b"]}) for i in range(n_users * per_user + 3)],
            "pairwise", "race.jsonl"))
        uids = [accounts.add_user(s, f"racer{i}", "annotator", "pw", ["race"]).id for i in range(n_users)]
    errors, done = [], []

    def worker(uid):
        try:
            for _ in range(per_user):
                with S.begin() as s:
                    t = leases.acquire_next(s, s.scalar(select(Project).where(Project.name == "race")), uid)
                    tid = t.id
                done.append(_label(S, uid, tid).task_id)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(u,)) for u in uids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(done) == len(set(done)) == n_users * per_user
    with S() as s:
        counts = s.execute(select(Label.task_id, func.count()).where(Label.undone_seq == 0)
                           .group_by(Label.task_id)).all()
        assert all(n == 1 for _, n in counts)
        assert all(t.n_labels == (1 if t.id in set(done) else 0)
                   for t in s.scalars(select(Task).where(Task.project_id == p.id)))
