"""``python -m alignstack.serve.cli`` as a real process; ``main(argv)`` error exits."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_chat_and_fault_injection(world_model_dir):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "alignstack.serve.cli", "--model", str(world_model_dir),
                             "--port", str(port), "--served-model-name", "cli-model", "--max-concurrency", "2",
                             "--fault-rate", "0.5", "--fault-seed", "3", "--threads", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "server did not come up"
            time.sleep(0.1)
        assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == "cli-model"
        codes = []
        for _ in range(10):
            r = httpx.post(url + "/v1/chat/completions", timeout=30,
                           json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
            codes.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "injected_fault"
            else:
                assert r.json()["choices"][0]["message"]["role"] == "assistant"
        assert set(codes) == {200, 503}
        stats = httpx.get(url + "/v1/stats").json()
        assert stats["faults_503"] == codes.count(503) and stats["completed"] == codes.count(200)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "alignstack serve: cli-model" in err


def test_main_reports_bad_arguments(tmp_path, capsys):
    from alignstack.serve.cli import main

    assert main(["--model", str(tmp_path / "missing")]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--fault-rate", "2"]) == 2
    assert main(["--model", str(tmp_path), "--max-concurrency", "0"]) == 2
