"""`alignstack feedback <subcommand>`: collect simulated human feedback on the built-in world.

    alignstack feedback collect --model runs/sft/model --out runs/feedback/train.jsonl \\
        --mode ranking -k 4 --k-max 9 --temperatures 0.7 1.3 --n-prompts 2000 --split train

Writes ``ranking`` rows (the annotator ranks all K samples) or ``preference`` rows (pairs with a
Llama 2 strength label), every response labelled safe/unsafe; the rows train
``alignstack reward_model`` (``data.path=...``) and the preference methods. ``--world 3`` collects on
world v3's train or dev prompts with its annotator pool (``--pool-size``, ``--pool-careless``) and
adds the pool's inter-annotator agreement to the printed summary.
"""
from __future__ import annotations

import argparse
import json
import sys


def _collect(argv: list[str]) -> int:
    from alignstack.data.formats import conversational
    from alignstack.data.sources import write_jsonl
    from alignstack.feedback.collect import CollectConfig, collect_from_path

    p = argparse.ArgumentParser(prog="alignstack feedback collect",
                                description="sample K responses per world prompt and label them with the "
                                            "simulated annotators (ranking or strength-labelled pairs)")
    p.add_argument("--model", required=True, help="causal-LM checkpoint to sample from (e.g. runs/sft/model)")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--mode", choices=("ranking", "preference"), default="ranking",
                   help="ranking: rank all K (InstructGPT); preference: K//2 pairs with strength (Llama 2)")
    p.add_argument("--n-prompts", type=int, default=1000)
    p.add_argument("--split", choices=("train", "dev", "eval"), default="train")
    p.add_argument("-k", "--num-samples", type=int, default=4, help="responses per prompt (2..9)")
    p.add_argument("--k-max", type=int, default=None, help="draw K per prompt from k..k-max (e.g. 4..9)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0],
                   help="sampling temperatures, cycled over the K samples (e.g. 0.7 1.3)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--safety-frac", type=float, default=None, help="share of harmful-request prompts")
    p.add_argument("--annotator-id", default="sim-0")
    p.add_argument("--annotator-noise", type=float, default=0.1)
    p.add_argument("--error-rate", type=float, default=0.05, help="annotator label-flip rate")
    p.add_argument("--guideline", choices=("overall", "fulfil"), default="overall",
                   help="what annotators judge: overall helpfulness (refusing harm is best) or, as Llama 2's "
                        "helpfulness annotators, how well the response fulfils the request")
    p.add_argument("--world", choices=("2", "3"), default="2",
                   help="built-in world version; 3: v3 prompts (train or dev; eval = dev) and its annotator pool")
    p.add_argument("--pool-size", type=int, default=8, help="world 3: annotators in the pool")
    p.add_argument("--pool-careless", type=int, default=1, help="world 3: careless annotators in the pool")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        cfg = CollectConfig(n_prompts=a.n_prompts, split=a.split, seed=a.seed, mode=a.mode, k=a.num_samples,
                            k_max=a.k_max, temperatures=list(a.temperatures), max_new_tokens=a.max_new_tokens,
                            safety_frac=a.safety_frac, annotator_id=a.annotator_id, annotator_noise=a.annotator_noise,
                            annotator_error_rate=a.error_rate, annotator_guideline=a.guideline, world=a.world,
                            pool_size=a.pool_size, pool_careless=a.pool_careless)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from alignstack.feedback.collect import inter_annotator

    rows = collect_from_path(a.model, cfg)
    write_jsonl(a.out, [conversational(r) if "chosen" in r else r for r in rows])   # TRL-loadable pairs
    n_resp = sum(len(r["responses"]) if "responses" in r else 2 for r in rows)
    stats = {"out": a.out, "rows": len(rows), "kind": a.mode, "responses": n_resp}
    agree = inter_annotator(rows, cfg)
    if agree is not None:
        stats.update(world=cfg.world, inter_annotator=agree)
    print(json.dumps(stats))
    return 0


SUBCOMMANDS = {"collect": (_collect, "sample K responses per prompt and label them (ranking / preference rows)")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: alignstack feedback <subcommand> [options]\n\nsubcommands:")
        for k, (_, doc) in SUBCOMMANDS.items():
            print(f"  {k:<10} {doc}")
        return 0
    cmd = argv[0]
    if cmd not in SUBCOMMANDS:
        print(f"error: unknown feedback subcommand {cmd!r}; expected one of {sorted(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return SUBCOMMANDS[cmd][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
