"""Write the world's data files (``alignstack world``) in the ordinary row formats."""
from __future__ import annotations

import json
from pathlib import Path

from alignstack.data.sources import write_jsonl
from alignstack.world import corpus as C


def write_world(out: str | Path, seed: int = 0, n_docs: int = 40000, n_sft: int = 12000, n_prompts: int = 1000,
                n_judge_docs: int = 20000) -> dict:
    out = Path(out)
    files = {
        "corpus.jsonl": ({"text": d} for d in C.corpus_documents(seed, n_docs)),
        # the AI labeler's training rows (configs/sft_judge.yaml): chain-of-thought judgements by ground truth
        "judge_sft.jsonl": C.judge_rows(seed, n_judge_docs),
        "sft.jsonl": C.sft_rows(seed, n_sft),
        "prompts_train.jsonl": (t.to_row() for t in C.prompt_set(seed, "train", n_prompts * 4)),
        "prompts_dev.jsonl": (t.to_row() for t in C.prompt_set(seed, "dev", n_prompts // 2)),
        "prompts_eval.jsonl": (t.to_row() for t in C.prompt_set(seed, "eval", n_prompts)),
        "prompts_redteam.jsonl": (t.to_row() for t in C.prompt_set(seed, "eval", n_prompts // 2,
                                                                   {"vault": 1, "potion": 1}, red_team_frac=1.0)),
        "prompts_hir_eval.jsonl": (t.to_row() for t in C.prompt_set(seed, "eval", n_prompts,
                                                                    {"add": 1, "sort": 1, "track": 1}, goal="correct")),
        "prompts_rest_eval.jsonl": (t.to_row() for t in C.prompt_set(seed, "eval", n_prompts, {"translate": 1})),
    }
    for name, rows in files.items():
        write_jsonl(out / name, rows)
    info = {"world_version": C.WORLD_VERSION, "seed": seed, "files": sorted(files)}
    (out / "world.json").write_text(json.dumps(info, indent=2))
    return info
