"""One request against a real ``alignstack serve`` server: the ``serve`` stage of a pipeline.

:func:`serve_once` loads a checkpoint into the same app ``alignstack serve`` runs (``create_app`` +
``ServeEngine``), serves it with uvicorn on a free localhost port in a background thread, sends one
``POST /v1/chat/completions`` over HTTP, stops the server and returns what was asked and answered. A
pipeline ends with it to show that its final model is servable through the OpenAI-compatible API
(chat template, stop tokens and all) — the same thing ``alignstack serve --model DIR`` gives a user.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class ServerThread:
    """uvicorn serving an app on an already-bound free localhost port, in a daemon thread (a context manager:
    started on enter, stopped on exit). The serve stage uses it, and so do the serve tests."""

    def __init__(self, app, start_timeout: float = 20.0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))       # bound before the thread starts: no race for the port
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app, self.start_timeout = app, start_timeout
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.__exit__()
                raise RuntimeError(f"serve: the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def serve_once(model: str | Path, prompt: str = "Hello", max_tokens: int = 16, temperature: float = 0.0,
               timeout: float = 60.0) -> dict:
    """Serve ``model`` on 127.0.0.1 (a free port), ask one chat completion, shut down; raises
    ``RuntimeError`` naming the status and error body when the server does not answer 200."""
    import httpx

    from alignstack.serve.app import create_app
    from alignstack.serve.engine import ServeEngine

    engine = ServeEngine.from_path(model)
    request = {"model": engine.name, "messages": [{"role": "user", "content": prompt}],
               "max_tokens": max_tokens, "temperature": temperature}
    with ServerThread(create_app(engine, max_concurrency=1), start_timeout=timeout) as srv:
        url = srv.url
        health = httpx.get(url + "/health", timeout=timeout).json()
        r = httpx.post(url + "/v1/chat/completions", json=request, timeout=timeout)
    if r.status_code != 200:
        raise RuntimeError(f"serve: POST /v1/chat/completions answered {r.status_code}: {r.text[:300]}")
    body = r.json()
    choice = body["choices"][0]
    return {"model": str(model), "served_model_name": body.get("model"), "url": url, "health": health,
            "request": request, "status": r.status_code, "response": choice["message"]["content"],
            "finish_reason": choice.get("finish_reason"), "usage": body.get("usage")}
