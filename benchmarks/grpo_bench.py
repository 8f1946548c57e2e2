"""GRPO throughput: alignstack vs TRL's GRPOTrainer on the same model, prompts, reward and settings, one run.

    python benchmarks/grpo_bench.py [--preset tiny|small] [--steps N] [--prompts 4] [--k 8] [--max-new 24] [--threads 1]

Each implementation runs in its own subprocess (so peak RSS is its own) on the same saved model (the
``tiny`` (0.6M parameters) or ``small`` (25.7M) Llama preset built from scratch with the world tokenizer; written
to ``benchmarks/results/grpo.json`` and ``grpo_small.json``. A random model never emits EOS, so both sides
generate exactly ``max-new`` tokens per completion and do identical work), the same world prompts
(chat format), the same cheap reward function, and pinned settings: β = 0.04 (frozen reference
model on both sides), GRPO loss with per-sequence aggregation (TRL ``loss_type="grpo"``), group-std
advantage scaling, K completions per prompt, one optimizer step per generation batch (TRL
``steps_per_generation=1``, ``num_iterations=1``), T = 1, top-p 1, lr 1e-5. TRL runs twice:
as shipped (its GRPOConfig defaults to bf16 mixed precision — CPU autocast here — and gradient checkpointing),
and at our arithmetic (``bf16=False``, ``gradient_checkpointing=False``: fp32, no recomputation); ours runs
fp32 and with ``dist.mixed_precision=bf16`` (autocast over sampling, reference and update). Like-for-like ratios
are printed and kept: ``ratio_fp32`` (both fp32), ``ratio_bf16`` (ours bf16 / TRL as shipped), and ``ratio``
(ours fp32 / TRL as shipped).
Prints completions/s after warm-up (wall clock, and per CPU-second of the process — with ``--threads 1`` the
latter does not count time spent waiting for a core on a shared machine), the ratio ours/TRL, peak RSS and
the roofline table of our step (benchmarks/roofline.py). Every implementation runs ``--repeats`` times, interleaved,
and keeps its fastest run (each run's rate is in the JSON): a 10-step tiny run (~1 s) moved by up to 2× between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from interleave import fastest_of  # benchmarks/ is on sys.path: the benchmarks run as scripts

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
WARM = 2
STEPS = {"tiny": 60, "small": 10}     # timed steps per preset: ≥ ~5 s of the fastest implementation


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reward(prompts, completions, **_) -> list[float]:
    """The benchmark's reward (both sides): share of digits in the completion (cheap, non-constant)."""
    out = []
    for c in completions:
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(sum(ch.isdigit() for ch in text) / max(1, len(text)))
    return out


def prepare(workdir: Path, n_prompts: int, preset: str = "tiny") -> None:
    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents, prompt_set
    tok = train_tokenizer(corpus_documents(0, 5000))
    save_pretrained_atomic(build_model(preset, tok), tok, workdir / "model")
    write_jsonl(workdir / "prompts.jsonl", [{"prompt": t.to_row()["prompt"]} for t in prompt_set(0, "train", n_prompts)])


def run_ours(work: Path, a) -> dict:
    from alignstack.config import load
    from alignstack.methods import grpo
    out = Path(tempfile.mkdtemp())
    cfg = load(grpo.GRPOConfig, overrides=[
        f"out={out}", f"model.path={work / 'model'}", f"prompts={work / 'prompts.jsonl'}", "reward=import:grpo_bench:reward",
        f"steps={a.steps}", f"prompts_per_step={a.prompts}", f"num_generations={a.k}", f"max_new_tokens={a.max_new}",
        "beta=0.04", "aggregation=sequence", "scale=std", "temperature=1.0", "optim.lr=1e-5", "log.progress=false",
        "log.every=1", "missing_eos_penalty=null",
        *(["dist.mixed_precision=bf16"] if a.impl == "ours_bf16" else [])])
    from alignstack.train import loop
    cpu: list[float] = []
    real_step = loop.Trainer.step

    def step(self, *args, **kw):                     # benchmark-only instrumentation (not a subclass)
        out = real_step(self, *args, **kw)
        cpu.append(time.process_time())
        return out
    loop.Trainer.step = step
    grpo.train(cfg)
    loop.Trainer.step = real_step
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward" in r]          # the method's per-step row (the loop logs its own too)
    times = [r["time"] for r in rows]
    n = a.prompts * a.k
    res = {"rate_completions": n * (len(times) - WARM) / (times[-1] - times[WARM - 1]),
           "rate_completions_cpu": n * (len(cpu) - WARM) / (cpu[-1] - cpu[WARM - 1]),
           "mean_length": sum(r["length"] for r in rows) / len(rows),
           # the run's own peak, before the roofline loads more models and multiplies large matrices in this process
           "peak_rss_mb": round(peak_mb())}
    if not a.no_roofline:
        res["roofline"] = roofline_of(work, a, bf16=a.impl == "ours_bf16")
    return res


def roofline_of(work: Path, a, critic: bool = False, bf16: bool = False) -> dict:
    """Per-phase GFLOP/s vs the matmul peak at the phase's shapes (benchmarks/roofline.py), measured after the
    timed run on the same model, prompts and sizes; ``bf16``: under bf16 autocast, against the bf16 peak."""
    sys.path.insert(0, str(Path(__file__).parent))
    import roofline
    import torch

    from alignstack.data.render import ChatRenderer
    from alignstack.models.load import (
        attention_for_precision,
        frozen_copy,
        load_model,
        load_tokenizer,
        prepare_reference,
    )
    tok = load_tokenizer(str(work / "model"))
    policy = load_model(str(work / "model")).eval()
    attention_for_precision(policy, "bf16" if bf16 else "no", "cpu")      # as the Trainer sets it
    rows = [json.loads(x) for x in (work / "prompts.jsonl").read_text().splitlines()][:a.prompts]
    r = ChatRenderer(tok)
    ids = [r.prompt_ids(row["prompt"]) for row in rows]
    crit = None
    if critic:
        from alignstack.methods.ppo import build_critic
        crit = build_critic(policy, None)
    ref = frozen_copy(policy)
    prepare_reference(ref, "bf16" if bf16 else "no", "cpu")                # as GRPO and PPO ready theirs
    return roofline.grpo_phases(policy, ref, tok, ids, a.k, a.max_new, critic=crit,
                                dtype=torch.bfloat16 if bf16 else None)


def run_trl(work: Path, a) -> dict:
    warnings.filterwarnings("ignore")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    tok = AutoTokenizer.from_pretrained(str(work / "model"))
    model = AutoModelForCausalLM.from_pretrained(str(work / "model"))
    rows = [json.loads(x) for x in (work / "prompts.jsonl").read_text().splitlines()]
    times: list[float] = []
    cpu: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())
            cpu.append(time.process_time())

    n = a.prompts * a.k
    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=n, gradient_accumulation_steps=1,
                      steps_per_generation=1, num_iterations=1, num_generations=a.k, max_completion_length=a.max_new,
                      max_steps=a.steps, beta=0.04, loss_type="grpo", scale_rewards="group", temperature=1.0,
                      top_p=1.0, learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0, use_cpu=True,
                      report_to=[], logging_steps=10 ** 6, save_strategy="no", disable_tqdm=True, seed=0,
                      dataloader_num_workers=0, max_grad_norm=1.0, weight_decay=0.0,
                      **({"bf16": False, "gradient_checkpointing": False} if a.impl == "trl_fp32" else {}))
    res_cfg = {"bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing}
    tr = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(rows),
                     processing_class=tok, callbacks=[Timer()])
    tr.train()
    return {"rate_completions": n * (len(times) - WARM) / (times[-1] - times[WARM - 1]),
            "rate_completions_cpu": n * (len(cpu) - WARM) / (cpu[-1] - cpu[WARM - 1]), **res_cfg}


def child(a) -> None:
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fn = run_ours if a.impl.startswith("ours") else run_trl
    res = fn(Path(a.workdir), a)
    res.setdefault("peak_rss_mb", round(peak_mb()))
    res.update(impl=a.impl, threads=torch.get_num_threads())
    print("RESULT " + json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help=f"steps per run (default per preset: {STEPS})")
    p.add_argument("--repeats", type=int, default=2, help="runs per implementation (interleaved); the fastest is kept")
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--k", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-new", type=int, default=24)
    p.add_argument("--impl")
    p.add_argument("--workdir")
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"))
    p.add_argument("--out", help="default: benchmarks/results/grpo.json (tiny) or grpo_<preset>.json")
    p.add_argument("--no-roofline", action="store_true", help="skip the per-phase roofline table")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads on both sides (0: torch's default; 1 is far steadier on a shared machine)")
    a = p.parse_args()
    if a.impl:
        return child(a)
    a.out = a.out or ("benchmarks/results/grpo.json" if a.preset == "tiny" else f"benchmarks/results/grpo_{a.preset}.json")
    a.steps = a.steps or STEPS[a.preset]
    work = Path(tempfile.mkdtemp(prefix="grpobench-"))
    prepare(work, 512, a.preset)
    from machine import machine
    row = {"settings": {k: v for k, v in vars(a).items()
                        if k in ("preset", "steps", "prompts", "k", "max_new", "threads")}, "machine": machine()}
    roofline: dict = {}                              # impl -> its roofline (measured in its first run)

    def run(impl: str, rep: int) -> dict:
        cmd = [sys.executable, __file__, "--impl", impl, "--workdir", str(work), "--steps", str(a.steps),
               "--prompts", str(a.prompts), "--k", str(a.k), "--max-new", str(a.max_new)] + \
              (["--no-roofline"] if a.no_roofline or rep else []) + ["--threads", str(a.threads)]   # roofline once
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode != 0 or not line:
            raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
        res = json.loads(line[0][7:])
        if "roofline" in res:
            roofline[impl] = res.pop("roofline")
        return res

    row.update(fastest_of(run, ("ours", "ours_bf16", "trl", "trl_fp32"), a.repeats, "rate_completions"))
    for impl, r in roofline.items():                 # measured in each of ours' first runs: kept on the fastest
        row[impl]["roofline"] = r
    o = row["ours"]
    # like for like: ours fp32 / TRL fp32 without checkpointing, ours bf16 / TRL as shipped (bf16); and ours fp32
    # against TRL as shipped ("ratio", the figure earlier runs recorded)
    for sfx, mine, theirs in (("", "ours", "trl"), ("_fp32", "ours", "trl_fp32"), ("_bf16", "ours_bf16", "trl")):
        row["ratio" + sfx] = row[mine]["rate_completions"] / row[theirs]["rate_completions"]
        row["ratio_cpu" + sfx] = row[mine]["rate_completions_cpu"] / row[theirs]["rate_completions_cpu"]
    print(f"{'impl':<28}{'completions/s':>15}{'per CPU-s':>11}{'peak MB':>9}")
    for name, x in (("ours (fp32)", o), ("ours (bf16 mixed precision)", row["ours_bf16"]),
                    ("TRL as shipped (bf16, GC)", row["trl"]), ("TRL fp32, no GC", row["trl_fp32"])):
        print(f"{name:<28}{x['rate_completions']:>15.1f}{x['rate_completions_cpu']:>11.1f}{x['peak_rss_mb']:>9}")
    print(f"ratio ours/TRL, both fp32: {row['ratio_fp32']:.2f}x wall clock ({row['ratio_cpu_fp32']:.2f}x per "
          f"CPU-second); both bf16: {row['ratio_bf16']:.2f}x ({row['ratio_cpu_bf16']:.2f}x); ours fp32 / TRL as "
          f"shipped: {row['ratio']:.2f}x (process time: steadier than wall time on a shared machine)")
    sys.path.insert(0, str(Path(__file__).parent))
    import roofline as rl
    for impl in ("ours", "ours_bf16"):
        if "roofline" in row[impl]:
            rl.print_table(row[impl]["roofline"], f"{impl}, GRPO step")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
