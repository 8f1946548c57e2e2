"""Bounded localhost load test with a crash: 20 annotator clients x 50 labels against a real server
process, which is killed with SIGKILL mid-run and restarted; clients retry with their idempotency
keys. Every acknowledged label must appear in the export exactly once."""
import json
import statistics
import threading
import time
import uuid

import pytest

pytestmark = pytest.mark.slow

CLIENTS, LABELS_EACH = 20, 50
STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")


def _seed(url, n_tasks):
    from alignstack.label import accounts, projects
    from alignstack.label.db import open_db

    engine, Session_ = open_db(url)
    rows = [json.dumps({"prompt": f"prompt {i}", "completions": [f"a{i}", f"b{i}"], "meta": {"i": i}})
            for i in range(n_tasks)]
    with Session_.begin() as s:
        p = projects.get_or_create_project(s, "load", "pairwise", 1)
        projects.import_rows(s, p, projects.parse_samples(rows, "pairwise", "load.jsonl"))
        for c in range(CLIENTS):
            accounts.add_user(s, f"ann{c:02d}", "annotator", f"pw{c}", ["load"])
    engine.dispose()


class Client(threading.Thread):
    def __init__(self, base, name, password, log_in):
        super().__init__(daemon=True)
        self.base, self.name, self.password, self.log_in = base, name, password, log_in
        self.acks, self.bodies, self.latencies, self.error = [], [], [], None
        self.retries = self.duplicates = self.replays = 0

    def _retry(self, fn, timed=False):
        """Call fn until the server answers (it may be down: killed and restarting); with
        ``timed``, also return how long the successful attempt took."""
        import httpx

        for _ in range(400):
            try:
                t0 = time.perf_counter()
                result = fn()
                return (result, time.perf_counter() - t0) if timed else result
            except (httpx.TransportError, ConnectionError):
                self.retries += 1
                time.sleep(0.05)
        raise RuntimeError("server never came back")

    def run(self):
        import httpx

        try:
            with httpx.Client(base_url=self.base, timeout=15) as c:
                csrf = self._retry(lambda: self.log_in(c, self.name, self.password))
                for i in range(LABELS_EACH):
                    nxt = self._retry(lambda: c.get("/api/projects/load/next"))
                    assert nxt.status_code == 200, nxt.text
                    task = nxt.json()["task"]
                    body = {"task_id": task["id"], "idempotency_key": str(uuid.uuid4()), "choice": i % 2,
                            "strength": STRENGTHS[i % 4], "safe": [True, i % 5 != 0]}
                    # the same key on every attempt
                    r, took = self._retry(lambda b=body: c.post("/api/label", json=b, headers={"X-CSRF-Token": csrf}),
                                          timed=True)
                    assert r.status_code == 200, f"{r.status_code} {r.text}"
                    self.latencies.append(took)
                    ack = r.json()
                    assert ack["ok"] and ack["idempotency_key"] == body["idempotency_key"]
                    self.duplicates += ack["duplicate"]
                    self.acks.append((ack["label_id"], body["idempotency_key"], task["id"]))
                    self.bodies.append(body)
                # replay a few old submissions (as a client would after losing the answer)
                for body, (label_id, _, _) in list(zip(self.bodies, self.acks))[::10]:
                    r = self._retry(lambda b=body: c.post("/api/label", json=b, headers={"X-CSRF-Token": csrf}))
                    assert r.status_code == 200 and r.json()["duplicate"] and r.json()["label_id"] == label_id
                    self.replays += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


def test_crash_restart_exactly_once(db_url, server_factory, log_in, capsys):
    from alignstack.label.cli import main

    url = db_url
    _seed(url, CLIENTS * LABELS_EACH + 100)
    srv = server_factory(url)
    clients = [Client(srv.base, f"ann{c:02d}", f"pw{c}", log_in) for c in range(CLIENTS)]
    t0 = time.perf_counter()
    for c in clients:
        c.start()
    total = CLIENTS * LABELS_EACH
    while sum(len(c.acks) for c in clients) < total * 0.4:  # kill -9 at ~40%
        assert time.perf_counter() - t0 < 60, "too slow before the crash"
        time.sleep(0.02)
    acked_before_kill = sum(len(c.acks) for c in clients)
    srv.kill9()
    t_kill = time.perf_counter()
    srv.start()
    downtime = time.perf_counter() - t_kill
    for c in clients:
        c.join(90)
    wall = time.perf_counter() - t0
    errors = [c.error for c in clients if c.error is not None or c.is_alive()]
    assert not errors, errors

    acks = [a for c in clients for a in c.acks]
    assert len(acks) == total
    out = srv.workdir / "export.jsonl"
    assert main(["export", "--db", url, "--project", "load", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    exported = [r["meta"]["label_id"] for r in rows]
    acked = [a[0] for a in acks]
    assert len(set(acked)) == len(acked)  # no two acknowledgements for one label
    assert sorted(exported) == sorted(acked)  # each acknowledged label exactly once, nothing else
    keys = {r["meta"]["idempotency_key"]: r["meta"]["task_id"] for r in rows}
    assert all(keys[k] == t for _, k, t in acks)
    assert len({r["meta"]["task_id"] for r in rows}) == total  # labels_per_task = 1: no task twice

    lat = sorted(x for c in clients for x in c.latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))]
    with capsys.disabled():
        print(f"\n[label load, {url.split(':')[0]}] {CLIENTS} clients x {LABELS_EACH} labels = {total} labels in {wall:.1f}s "
              f"(incl. {downtime:.1f}s restart after SIGKILL at {acked_before_kill} acks): "
              f"{total / wall:.0f} labels/s; submit latency p50 {statistics.median(lat) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms; {sum(c.retries for c in clients)} transport retries, "
              f"{sum(c.duplicates for c in clients)} retried submissions answered as duplicates, "
              f"{sum(c.replays for c in clients)} deliberate replays answered with the original ack")
