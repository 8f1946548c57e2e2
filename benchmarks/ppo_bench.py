"""PPO throughput and roofline: our PPO (separate critic) on the GRPO benchmark's model, prompts and reward.

    python benchmarks/ppo_bench.py [--steps 20] [--batch 32] [--max-new 24] [--threads N]

Prints completions/s after warm-up, the wall-time split of an iteration (generation, scoring, reference and
old values, training) and the roofline table (benchmarks/roofline.py: per phase GFLOP/s next to the matmul
peak at that phase's shapes, measured in the same process). Ours only: TRL's PPOTrainer needs a separate
reward-model network and runs a different loop, so a side-by-side number would not compare like with like.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)   # ≥ ~5 s timed: shorter runs moved up to 2× between runs
    p.add_argument("--batch", type=int, default=32, help="episodes per iteration")
    p.add_argument("--max-new", type=int, default=24)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="benchmarks/results/ppo.json")
    a = p.parse_args()
    import grpo_bench
    import roofline
    import torch

    from alignstack.config import load
    from alignstack.methods import ppo
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="ppobench-"))
    grpo_bench.prepare(work, 512)
    out = work / "run"
    cfg = load(ppo.PPOConfig, overrides=[
        f"out={out}", f"model.path={work / 'model'}", f"prompts=rows:{work / 'prompts.jsonl'}",
        "reward=import:grpo_bench:reward", f"steps={a.steps}", f"batch_size={a.batch}", "minibatches=1",
        "ppo_epochs=1", f"max_new_tokens={a.max_new}", "missing_eos_penalty=null", "log.progress=false"])
    res = ppo.train(cfg)
    peak = round(grpo_bench.peak_mb())                  # the run's own, before the roofline adds to this process
    rf = grpo_bench.roofline_of(work, argparse.Namespace(prompts=a.batch, k=1, max_new=a.max_new), critic=True)
    from machine import machine
    row = {"settings": vars(a), "machine": machine(), "completions_per_s": res["completions_per_s"],
           "time_split_s": res["time_split_s"], "threads": torch.get_num_threads(), "peak_rss_mb": peak, "roofline": rf}
    print(f"PPO (ours): {res['completions_per_s']:.1f} completions/s; split {res['time_split_s']}; "
          f"peak RSS {row['peak_rss_mb']} MB")
    roofline.print_table(rf, "ours, PPO iteration, separate critic")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
