"""Fixtures for the serve / HTTP-judge tests: a nano world model (briefly trained so judge option
tokens come first after ``Better:``) and ``alignstack serve`` apps running on free localhost ports
in background threads."""
from __future__ import annotations

import random
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn, httpx) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="the serve extra is not installed")

from alignstack.serve.smoke import ServerThread as _ServerThread  # noqa: E402


def make_world_model(path: Path, steps: int = 30, seed: int = 0) -> Path:
    """Tokenizer + nano model; a few AdamW steps on judge / rating / chat documents (a few seconds)."""
    import torch

    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents

    docs = corpus_documents(0, 2000)
    tok = train_tokenizer(docs)
    model = build_model("nano", tok, seed=seed)
    judge = [d for d in docs if d.startswith(("<|judge|>", "<|rate|>"))]
    other = [d for d in docs if not d.startswith(("<|judge|>", "<|rate|>"))][:400]
    enc = [[tok.bos_token_id] + tok(d, add_special_tokens=False)["input_ids"][:200] for d in judge + other]
    weights = [3.0] * len(judge) + [1.0] * len(other)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    torch.manual_seed(seed)
    for _ in range(steps):
        batch = rng.choices(enc, weights=weights, k=8)
        T = max(map(len, batch))
        ids = torch.full((len(batch), T), tok.pad_token_id)
        lab = torch.full((len(batch), T), -100)
        for i, e in enumerate(batch):
            ids[i, :len(e)] = torch.tensor(e)
            lab[i, :len(e)] = torch.tensor(e)
        loss = model(input_ids=ids, attention_mask=(lab != -100).long(), labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return save_pretrained_atomic(model, tok, path)


@contextmanager
def torch_threads(n: int = 1):
    """One intra-op thread: on a small shared machine, two threads fighting other processes for two
    cores run these tiny models ~10x slower. The previous setting is restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def world_model_dir(tmp_path_factory) -> Path:
    with torch_threads(1):
        return make_world_model(tmp_path_factory.mktemp("serve_model") / "nano")


@pytest.fixture(scope="session")
def engine(world_model_dir):
    from alignstack.serve.engine import ServeEngine

    return ServeEngine.from_path(world_model_dir, name="nano-world")


class ServerThread(_ServerThread):
    """The package's server thread (``alignstack.serve.smoke``), plus the stats endpoint the tests read."""

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url + "/v1/stats", timeout=10).json()


@pytest.fixture(scope="session")
def server(engine):
    """A plain server (no faults) shared by the read-only tests."""
    from alignstack.serve.app import create_app

    with ServerThread(create_app(engine, max_concurrency=4)) as s:
        yield s


@pytest.fixture
def make_server(engine):
    """Start extra servers with their own options (fault injection, queue limits)."""
    from alignstack.serve.app import create_app

    started = []

    def _make(**kw) -> ServerThread:
        s = ServerThread(create_app(engine, **kw)).__enter__()
        started.append(s)
        return s

    yield _make
    for s in started:
        s.__exit__(None, None, None)
