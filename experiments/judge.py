"""A judge worth its name (issue 26): distil the world's AI labeler from ground-truth-graded pairs of the policy's
own samples, and measure its agreement with ground truth on held-out pairs.

    python experiments/judge.py --fixture .cache/fixtures/<key> [--train-prompts 20000] [--eval-prompts 4000]

The RLAIF paper's labeler is a large off-the-shelf model prompted with chain of thought. The world has none, so
the judge is distilled, by design, from the world's ground truth: the SFT model samples two responses to each of
``--train-prompts`` train-split prompts, and every decided pair (ground truth differs) becomes a plain-text row
whose completion is a chain of thought — the expected answer, a grade of each response, the verdict
(``world.corpus.graded_judge_row``) — in both orders. The SFT model is fine-tuned on these rows with the loss on
the completion only (``sft`` with ``data.raw_text=true``). Then, exactly as the CI judge test does, the judge
labels pairs of SFT samples on ``--eval-prompts`` eval-split prompts (never seen in training) with chain of thought
and order averaging, and its agreement with ground truth on decided pairs is reported with a prompt-level 95% CI,
per family. Writes ``--result`` (experiments/results/judge.json) and the judge to ``--out``/judge/model.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.data.sources import write_jsonl
    from alignstack.feedback.judges import PairwiseJudge
    from alignstack.methods import sft
    from alignstack.methods.rlaif import judge_report, local_backend, sample_pairs
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.world import corpus as C
    from alignstack.world.plugin import example_of

    p = argparse.ArgumentParser()
    p.add_argument("--fixture", required=True, help="a test fixture folder holding pretrain/ and sft/")
    p.add_argument("--out", default="runs/judge_distill")
    p.add_argument("--train-prompts", type=int, default=20000)
    p.add_argument("--eval-prompts", type=int, default=4000)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    p.add_argument("--init", choices=("sft", "pretrain"), default="sft")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--result", default="experiments/results/judge.json")
    p.add_argument("--layout", choices=C.LAYOUTS, default="pairs",
                   help="grades: the rationale grades each response; echo: it first copies each response's answer "
                        "next to the expected one; pairs: sequence answers element by element against the expected "
                        "one (world.corpus.graded_judge_row)")
    p.add_argument("--cot-max-tokens", type=int, default=128)
    p.add_argument("--skip-train", action="store_true", help="evaluate an existing --out/judge/model")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    fx, out = Path(a.fixture), Path(a.out)
    sft_path = fx / "sft" / "model"
    pol, tok = load_model(sft_path).eval(), load_tokenizer(sft_path)

    train_res = None
    if not a.skip_train:
        rows, n_pairs = [], 0
        tasks = [example_of(t) for t in C.prompt_set(1, "train", a.train_prompts)]
        for i, temp in enumerate(a.temperatures):
            for r in sample_pairs(pol, tok, tasks, temp, 24, 100 + 2 * i):
                x, y = r["completions"]
                t = r["task"].ref
                for first, second in ((x, y), (y, x)):       # both orders: no position to lean on
                    row = C.graded_judge_row(t, first, second, a.layout)
                    if row is not None:
                        rows.append(row)
                n_pairs += 1
        write_jsonl(out / "judge_rows.jsonl", rows)
        print(f"[judge] {len(rows)} rows from {n_pairs} sampled pairs ({time.perf_counter() - t0:.0f}s)", flush=True)
        init = sft_path if a.init == "sft" else fx / "pretrain" / "model"
        train_res = sft.train(load(sft.SFTConfig, None, [
            f"out={out}/judge", f"model.path={init}", f"data.path={out}/judge_rows.jsonl", "data.raw_text=true",
            f"data.n_rows={len(rows)}", f"optim.lr={a.lr}", "optim.batch_size=32", f"optim.epochs={a.epochs}",
            "optim.warmup_steps=20", "optim.schedule=cosine", "optim.weight_decay=0.01", "log.progress=false"]))
        print(f"[judge] trained: {train_res.get('steps')} steps, loss {train_res.get('train_loss')}", flush=True)

    # held-out pairs, as in tests/ai_feedback/test_ai_feedback_ground_truth.py
    ev_tasks = [example_of(t) for t in C.prompt_set(0, "eval", a.eval_prompts)]
    ev = sample_pairs(pol, tok, ev_tasks, 1.0, 24, 0)
    xa, xb = [r["completions"][0] for r in ev], [r["completions"][1] for r in ev]
    judge = PairwiseJudge(local_backend(str(out / "judge" / "model")), both_orders=True, cot=True,
                          cot_max_tokens=a.cot_max_tokens)
    res = judge.judge([r["prompt"] for r in ev], xa, xb)
    rep = judge_report(ev_tasks, xa, xb, res)
    print(json.dumps({"agreement": rep["agreement"], "per_family": rep["per_family_agreement"]}, indent=1))
    for r, d in list(zip(ev, res))[:6]:
        print(repr(r["prompt"])[:80], "|", r["completions"], "|", d.get("rationale"), "|", round(d["p_a"], 3))
    result = {"judge": "SFT fixture fine-tuned on ground-truth-graded chain-of-thought pairs of its own samples"
                       + {"grades": "", "echo": " (rationale echoes each answer next to the expected one)",
                          "pairs": " (rationale lays each answer against the expected one element by element)"}[a.layout],
              "fixture": str(fx), "args": vars(a), "train": train_res, "eval_split": "eval (seed 0)",
              "report": rep, "wall_s": time.perf_counter() - t0}
    Path(a.result).parent.mkdir(parents=True, exist_ok=True)
    Path(a.result).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
