"""Evaluate policies of this project on its held-out prompts with its own verifier.

    python evaluate.py runs/byo/sft/model runs/byo/grpo/model runs/byo/rest/model --samples 8

Prints each model's verifier accuracy (``samples`` draws at T = 1 per prompt, and greedy) and, for every
model after the first, the paired per-prompt difference to the first with a 95% CI.
"""
import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def accuracy(path: str, prompts: list[dict], samples: int, seed: int) -> dict:
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.rollout.engine import SamplingConfig
    from alignstack.rollout.experience import complete
    from alignstack.tasks import example_from_row

    sys.path.insert(0, str(HERE))
    from mytask import check

    tok, model = load_tokenizer(path), load_model(path).eval()
    exs = [example_from_row({**r, "prompt": [{"role": "user", "content": r["prompt"]}]}) for r in prompts]
    msgs = [e.prompt for e in exs]
    per = [0.0] * len(exs)
    for s in range(samples):
        texts = complete(model, tok, msgs, SamplingConfig(16, 1.0), seed + s)
        for i, (e, t) in enumerate(zip(exs, texts)):
            per[i] += check(e, t) / samples
    greedy = complete(model, tok, msgs, SamplingConfig(16, 1.0, greedy=True), seed)
    return {"model": path, "sampled": sum(per) / len(per), "greedy": sum(check(e, t) for e, t in zip(exs, greedy))
            / len(exs), "per_prompt": per}


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    d = [x - y for x, y in zip(a, b)]
    n, m = len(d), sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / max(n - 1, 1))
    return m, m - 1.96 * sd / math.sqrt(n), m + 1.96 * sd / math.sqrt(n)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--prompts", default=str(HERE / "data" / "eval_prompts.jsonl"))
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    rows = [json.loads(x) for x in Path(a.prompts).read_text().splitlines() if x.strip()]
    res = [accuracy(m, rows, a.samples, a.seed) for m in a.models]
    base = res[0]
    for r in res:
        line = f"{r['model']:<40} sampled {r['sampled']:.3f}  greedy {r['greedy']:.3f}"
        if r is not base:
            m, lo, hi = paired(r["per_prompt"], base["per_prompt"])
            line += f"  vs first: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            r["vs_first"] = [m, lo, hi]
        print(line)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
