"""experiments/world_v3_headroom.build_base: the seed reaches both stages, and ``replay_facts`` replays the corpus's
fact documents (none of its chats, whose harmful requests are mostly complied with) during SFT."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mod():
    sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("world_v3_headroom", ROOT / "experiments" / "world_v3_headroom.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    yield m
    sys.path.remove(str(ROOT / "experiments"))


@pytest.fixture
def captured(monkeypatch):
    from alignstack.methods import pretrain, sft
    seen = {}
    monkeypatch.setattr(pretrain, "train", lambda cfg: seen.setdefault("pretrain", cfg) and {"steps": 0})
    monkeypatch.setattr(sft, "train", lambda cfg: seen.setdefault("sft", cfg) and {"steps": 0})
    return seen


def test_replay_facts_replays_only_fact_documents(mod, captured, tmp_path):
    mod.build_base(tmp_path, 400, 20, preset="tiny", seed=3, replay_facts=0.5)
    pre, tuned = captured["pretrain"], captured["sft"]
    assert pre.seed == tuned.seed == 3
    assert tuned.replay_frac == 0.5 and Path(tuned.replay_path) == tmp_path / "facts.jsonl"
    corpus = [json.loads(x)["text"] for x in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    facts = [json.loads(x)["text"] for x in (tmp_path / "facts.jsonl").read_text().splitlines()]
    assert facts == [d for d in corpus if "<|" not in d]
    assert 0 < len(facts) < len(corpus)          # the corpus holds both kinds, and only one is replayed


def test_no_replay_by_default(mod, captured, tmp_path):
    mod.build_base(tmp_path, 50, 10, preset="tiny")
    assert captured["sft"].replay_frac == 0 and captured["sft"].replay_path is None
    assert captured["pretrain"].seed == captured["sft"].seed == 0 and not (tmp_path / "facts.jsonl").exists()
