"""Write world v3's data files in the ordinary row formats (the v3 counterpart of ``world/files.py``).

The test split is written only when asked with ``sealed=True`` (final evaluation); train and dev
prompt files are always written.
"""
from __future__ import annotations

import json
from pathlib import Path

from alignstack.data.sources import write_jsonl
from alignstack.world.v3 import corpus as C
from alignstack.world.v3 import lexicon as L
from alignstack.world.v3 import splits as S


def write_world(out: str | Path, seed: int = 0, n_docs: int = 40000, n_sft: int = 12000, n_prompts: int = 1000,
                *, sealed: bool = False) -> dict:
    out = Path(out)
    files = {
        "corpus.jsonl": ({"text": d} for d in C.corpus_documents(seed, n_docs)),
        "sft.jsonl": C.sft_rows(seed, n_sft),
        "prompts_train.jsonl": (t.to_row() for t in S.prompt_set(seed, "train", n_prompts * 4)),
        "prompts_dev.jsonl": (t.to_row() for t in S.prompt_set(seed, "dev", n_prompts)),
    }
    if sealed:
        files["prompts_test.jsonl"] = (t.to_row() for t in S.sealed_test_set(seed, n_prompts))
    for name, rows in files.items():
        write_jsonl(out / name, rows)
    info = {"world_version": L.VERSION, "seed": seed, "files": sorted(files)}
    (out / "world.json").write_text(json.dumps(info, indent=2))
    return info


def fingerprint(seed: int = 0, n: int = 400) -> str:
    """A short hash of what world v3 *generates*: its template table, mixture and facts, and the first ``n``
    corpus documents, SFT demonstrations and prompts of every split. A result JSON records it so that a change to
    the world (a calibration attempt) that was not followed by a re-run shows as a stale result, not as numbers
    that silently describe another world. Comments and refactors leave it unchanged. It hashes test prompts too
    (never shows them), as ``world stats`` reads their ids."""
    import hashlib

    from alignstack.world.v3.templates import TEMPLATES

    h = hashlib.sha256()
    parts = [[(t.id, t.split, t.turns, t.style, t.slot, t.encode) for t in TEMPLATES], sorted(S.MIX.items()),
             L.fact_sentences(), C.corpus_documents(seed, n), C.sft_rows(seed, n)]
    parts += [[t.to_row() for t in S.prompt_set(seed, split, n, sealed=split == "test")] for split in S.SPLITS]
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
