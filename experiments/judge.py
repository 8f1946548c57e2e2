"""A judge worth its name (issue 26): distil the world's AI labeler from ground-truth-graded pairs of the policy's
own samples, and measure its agreement with ground truth on held-out pairs.

    python experiments/judge.py --fixture .cache/fixtures/<key> [--train-prompts 20000] [--eval-prompts 4000]
    python experiments/judge.py --world 3 --fixture runs/v3_claims/base --result experiments/results/judge_v3.json
    python experiments/judge.py --kind rating --init-path runs/judge_pairs/judge/model --fixture … --out runs/judge_rating

A thin wrapper over the ``judge`` method (``alignstack/methods/judge.py``; ``alignstack judge`` runs the same):
the SFT model samples two responses to each of ``--train-prompts`` train-split prompts, every decided pair (ground
truth differs) becomes, in both orders, a plain-text row whose completion is a chain of thought — the expected
answer, each response laid against it (``--layout``), a grade of each, the verdict (the world's grader,
``grader=world:LAYOUT``) — and the SFT model is fine-tuned on the rows with the loss on the completion only. Then
the judge labels pairs of SFT samples on ``--eval-prompts`` eval-split prompts (never trained on; harmful requests
are shared by every split) with chain of thought and order averaging, as the CI judge test does, and its agreement
with ground truth on decided pairs is reported with a 95% CI, per family. Seeds as in the recorded runs (training
prompts of seed 1, pairs sampled with seed 100, eval prompts and their pairs with seed 0). Writes ``--result``
(experiments/results/judge.json) and the judge to ``--out``/judge/model.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

LAYOUT_NOTE = {"grades": "", "echo": " (rationale echoes each answer next to the expected one)",
               "pairs": " (rationale lays each answer against the expected one element by element)"}


def main() -> None:
    import torch

    from alignstack.config import load
    from alignstack.methods import judge as J

    p = argparse.ArgumentParser()
    p.add_argument("--fixture", required=True, help="a test fixture folder holding pretrain/ and sft/")
    p.add_argument("--out", default="runs/judge_distill")
    p.add_argument("--train-prompts", type=int, default=20000)
    p.add_argument("--eval-prompts", type=int, default=4000)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    p.add_argument("--init", choices=("sft", "pretrain"), default="sft")
    p.add_argument("--init-path", default=None,
                   help="the judge's starting checkpoint instead of the fixture's --init model (e.g. the pairwise "
                        "judge, for --kind rating: it already writes the answer-against-expected layout)")
    p.add_argument("--kind", choices=("pairwise", "rating"), default="pairwise",
                   help="rating: a 1-10 scoring judge for d-RLAIF (each response graded alone, then scored); its "
                        "agreement is the pairwise verdict of its two scores on the same held-out pairs")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--result", default="experiments/results/judge.json")
    p.add_argument("--layout", choices=tuple(LAYOUT_NOTE), default="pairs",
                   help="grades: the rationale grades each response; echo: it first copies each response's answer "
                        "next to the expected one; pairs: sequence answers element by element against the expected "
                        "one (world.corpus.graded_rationale)")
    p.add_argument("--cot-max-tokens", type=int, default=128)
    p.add_argument("--skip-train", action="store_true", help="evaluate an existing --out/judge/model")
    p.add_argument("--world", choices=("2", "3"), default="2",
                   help="3: grader=world3 (train prompts world3:train, eval prompts world3:dev; agreement per family "
                        "and per attack style)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    fx = Path(a.fixture)
    cfg = load(J.JudgeDistillConfig, None, [
        f"out={a.out}/judge", f"model.path={fx / 'sft' / 'model'}", f"init={a.init_path or fx / a.init / 'model'}", f"kind={a.kind}",
        f"grader={'world3' if a.world == '3' else 'world'}:{a.layout}", f"n_prompts={a.train_prompts}", f"temperatures={a.temperatures}",
        "prompt_seed=1", "sample_seed=100", f"optim.lr={a.lr}", f"optim.epochs={a.epochs}",
        f"eval_prompts={a.eval_prompts}", f"cot_max_tokens={a.cot_max_tokens}", "log.progress=false"])

    if a.skip_train:
        from alignstack.models.load import load_model, load_tokenizer
        from alignstack.tasks import resolve
        pol, tok = load_model(cfg.model.path).eval(), load_tokenizer(cfg.model.path)
        grader = resolve(cfg.grader, "grader", key="grader")
        rep = J.evaluate(cfg, Path(cfg.out) / "model", pol, tok, grader, J.load_template(cfg.template),
                         J.train_examples(cfg))
        res = {"train": None, "eval": rep}
    else:
        res = J.train(cfg)
    rep = res.get("eval")                     # None with --eval-prompts 0
    if rep is not None:
        print(json.dumps({"agreement": rep["agreement"], "per_family": rep["per_family_agreement"],
                          "per_style": rep.get("per_style_agreement")}, indent=1))
        with open(Path(cfg.out) / "eval_pairs.jsonl") as f:
            for line in list(f)[:6]:
                r = json.loads(line)
                print(repr(r["prompt"])[:80], "|", [r["a"], r["b"]], "|", r["rationale"], "|", round(r["p_a"], 3))
    what = ("1-10 ratings of single samples" if a.kind == "rating" else "pairs")
    result = {"judge": f"{'the judge at ' + a.init_path if a.init_path else 'SFT fixture'} fine-tuned on "
                       f"ground-truth-graded chain-of-thought {what} of the SFT model's samples" + LAYOUT_NOTE[a.layout],
              "fixture": str(fx), "args": vars(a), "method": "alignstack judge " + " ".join(_overrides(cfg)),
              "train": res["train"], "rows": res.get("rows"), "eval_split": "dev (seed 0)" if a.world == "3" else "eval (seed 0)",
              "world_version": a.world, "report": rep,
              "wall_s": time.perf_counter() - t0}
    Path(a.result).parent.mkdir(parents=True, exist_ok=True)
    Path(a.result).write_text(json.dumps(result, indent=1, default=str))


def _overrides(cfg) -> list[str]:
    """The command line that reruns this with ``alignstack judge``."""
    return [f"model.path={cfg.model.path}", f"init={cfg.init}", f"kind={cfg.kind}", f"grader={cfg.grader}", f"n_prompts={cfg.n_prompts}",
            f"temperatures=[{','.join(map(str, cfg.temperatures))}]", f"prompt_seed={cfg.prompt_seed}",
            f"sample_seed={cfg.sample_seed}", f"optim.lr={cfg.optim.lr}", f"optim.epochs={cfg.optim.epochs}",
            f"eval_prompts={cfg.eval_prompts}", f"cot_max_tokens={cfg.cot_max_tokens}"]


if __name__ == "__main__":
    main()
