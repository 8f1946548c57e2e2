"""Shared helpers for the DPO-family tests: small preference batches built from the world's
demonstrations (no sampling needed)."""
from __future__ import annotations

import pytest


def demo_pairs(n: int, seed: int = 0) -> list[dict]:
    """Preference rows: the world demonstration as chosen, another prompt's demonstration as rejected."""
    from alignstack.world.corpus import sft_rows

    rows = sft_rows(seed, n + 1)
    out = []
    for i in range(n):
        m, other = rows[i]["messages"], rows[i + 1]["messages"]
        out.append({"prompt": m[:-1], "chosen": m[-1]["content"], "rejected": other[-1]["content"]})
    return out


def demo_unpaired(n: int, seed: int = 0) -> list[dict]:
    return [{"prompt": r["prompt"], "completion": r["chosen"] if i % 2 == 0 else r["rejected"],
             "label": i % 2 == 0} for i, r in enumerate(demo_pairs(n, seed))]


@pytest.fixture(scope="session")
def make_pairs():
    return demo_pairs


@pytest.fixture()
def pairs_file(tmp_path):
    from alignstack.data.sources import write_jsonl

    return write_jsonl(tmp_path / "pairs.jsonl", demo_pairs(48))


@pytest.fixture()
def unpaired_file(tmp_path):
    from alignstack.data.sources import write_jsonl

    return write_jsonl(tmp_path / "unpaired.jsonl", demo_unpaired(48))
