"""Throughput and latency of ``alignstack serve`` under a bounded localhost load.

    python benchmarks/serve_bench.py                       # fresh tiny world model, 8 clients x 25 requests
    python benchmarks/serve_bench.py --model out/sft/model --clients 4 --requests 50 --max-tokens 32

Starts the server as a real process (``python -m alignstack.serve.cli``) on a free port, sends
``clients`` concurrent streams of ``requests`` sequential chat requests (``max_tokens`` each,
temperature 1, no early stop beyond the model's own), and prints requests/s, completion tokens/s
and p50/p95 latency as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_tiny_model(path: Path, preset: str) -> Path:
    sys.path.insert(0, str(REPO))
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents

    tok = train_tokenizer(corpus_documents(0, 2000))
    return save_pretrained_atomic(build_model(preset, tok), tok, path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: a fresh untrained world model)")
    ap.add_argument("--preset", default="tiny", help="preset of the fresh model when --model is not given")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=25, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="the server's torch threads (0: torch default)")
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)

    import httpx

    tmp = tempfile.TemporaryDirectory()
    model = Path(args.model) if args.model else make_tiny_model(Path(tmp.name) / "model", args.preset)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "alignstack.serve.cli", "--model", str(model), "--port", str(port),
                             "--max-concurrency", str(args.max_concurrency), "--max-queue", "1000"]
                            + (["--threads", str(args.threads)] if args.threads else []), env=env)
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                print("the server exited", file=sys.stderr)
                return 1
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        body = {"model": "bench", "messages": [{"role": "user", "content": "Add 2 and 3"}],
                "max_tokens": args.max_tokens, "temperature": 1.0}
        with httpx.Client(timeout=120) as c:   # warm-up
            for _ in range(3):
                c.post(url + "/v1/chat/completions", json=body).raise_for_status()
        lat: list[float] = []
        errors: list[str] = []
        tokens = [0]
        lock = threading.Lock()

        def client(i: int):
            with httpx.Client(timeout=120) as c:
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    r = c.post(url + "/v1/chat/completions", json=body)
                    dt = time.perf_counter() - t0
                    with lock:
                        if r.status_code == 200:
                            lat.append(dt)
                            tokens[0] += r.json()["usage"]["completion_tokens"]
                        else:
                            errors.append(f"{r.status_code}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stats = httpx.get(url + "/v1/stats").json()
    finally:
        proc.terminate()
        proc.wait(30)
        tmp.cleanup()
    res = {"model": str(args.model or f"fresh {args.preset} world model"), "clients": args.clients,
           "requests_per_client": args.requests, "max_tokens": args.max_tokens,
           "max_concurrency": args.max_concurrency, "ok": len(lat), "errors": len(errors), "wall_s": round(wall, 3),
           "requests_per_s": round(len(lat) / wall, 2), "completion_tokens_per_s": round(tokens[0] / wall, 1),
           "latency_p50_ms": round(1000 * percentile(lat, 0.5), 1),
           "latency_p95_ms": round(1000 * percentile(lat, 0.95), 1),
           "latency_mean_ms": round(1000 * statistics.fmean(lat), 1),
           "mean_batch": round(stats["batched_requests"] / max(1, stats["batches"]), 2),
           "server_threads": args.threads or "default", "cpu_count": os.cpu_count(),
           "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
