"""SFT throughput: alignstack vs TRL's SFTTrainer on the same model, data and settings, one run.

    python benchmarks/sft_bench.py [--presets tiny,small] [--steps N] [--batch 8]

Each (implementation, preset) runs in its own subprocess (so peak RSS is its own) on the same
saved model (Llama preset built from scratch), the same world SFT conversations (prompt →
completion, loss on the completion only), batch size, learning rate, no packing. TRL runs twice: as shipped
(its configs default to bf16 mixed precision — CPU autocast here — and gradient checkpointing) and at our
arithmetic (``bf16=False``, ``gradient_checkpointing=False``); ours runs fp32 without checkpointing. ``ratio``
is ours / TRL as shipped, ``ratio_fp32`` ours / TRL at the same arithmetic.
Runs without and with length-grouped batches (ours: ``optim.group_by_length``; TRL:
``train_sampling_strategy="group_by_length"``), always the same setting on both sides.
Prints tokens/s (non-pad tokens per second after warm-up), the ratio ours/TRL, peak RSS, and model
FLOPs utilisation (6·N·tokens/s over this machine's measured fp32 matmul peak).
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
from machine import machine

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
WARM = 3
# timed steps per preset: a tiny step takes ~20 ms, so 30 of them (the old default) left the rate to scheduler
# noise (ratios moved by 2× between runs); a small step takes ~1 s
STEPS = {"tiny": 200, "small": 60}
GROUP = 50      # batches per length-sorted mega-batch (the size transformers' LengthGroupedSampler uses)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_flops(n: int = 1024, reps: int = 20) -> float:
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def prepare(workdir: Path, preset: str, n_rows: int) -> None:
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents, sft_rows
    tok = train_tokenizer(corpus_documents(0, 5000))
    save_pretrained_atomic(build_model(preset, tok), tok, workdir / preset)
    rows = [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in sft_rows(0, n_rows)]
    (workdir / "data.json").write_text(json.dumps(rows))


def run_ours(model_dir: Path, rows: list, steps: int, bs: int, grouped: bool) -> dict:
    from alignstack.config import LogConfig, OptimConfig
    from alignstack.data.render import ChatRenderer
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.train.supervised import fit
    tok, model = load_tokenizer(model_dir), load_model(model_dir)
    r = ChatRenderer(tok, max_length=256)
    items = [r.prompt_completion(x["prompt"], x["completion"][0]["content"]) for x in rows]
    times: list[float] = []
    optim = OptimConfig(lr=1e-4, batch_size=bs, max_steps=steps, warmup_steps=0, schedule="constant", grad_clip=1.0,
                        weight_decay=0.0, group_by_length=GROUP if grouped else 0)
    fit(model, tok, items, optim, tempfile.mkdtemp(),
        log=LogConfig(progress=False, every=10 ** 9), on_step=lambda tr, s: times.append(time.perf_counter()))
    # tokens per step: the same deterministic batches as the run
    from alignstack.train.supervised import BatchPlan
    plan = BatchPlan(len(items), 0, bs, [len(x.input_ids) for x in items], optim.group_by_length)
    tok_steps = [sum(len(items[i].input_ids) for i in plan(s)) for s in range(steps)]
    return {"rate_tokens": sum(tok_steps[WARM:]) / (times[-1] - times[WARM - 1]),
            "params": sum(p.numel() for p in model.parameters())}


def run_trl(model_dir: Path, rows: list, steps: int, bs: int, grouped: bool, fp32: bool = False) -> dict:
    warnings.filterwarnings("ignore")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    times: list[float] = []
    ntok: list[int] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    ds = Dataset.from_list(rows)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=bs, max_steps=steps, report_to=[],
                     logging_steps=10 ** 6, save_strategy="no", learning_rate=1e-4, lr_scheduler_type="constant",
                     warmup_steps=0, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0,
                     max_length=256, packing=False, max_grad_norm=1.0, weight_decay=0.0,
                     train_sampling_strategy="group_by_length" if grouped else "random",
                     **({"bf16": False, "gradient_checkpointing": False} if fp32 else {}))
    tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()])
    orig = tr.training_step

    def counting_step(model, inputs, *a, **k):
        ntok.append(int(inputs["attention_mask"].sum()))
        return orig(model, inputs, *a, **k)
    tr.training_step = counting_step
    tr.train()
    return {"rate_tokens": sum(ntok[WARM:]) / (times[-1] - times[WARM - 1]),
            "params": sum(p.numel() for p in model.parameters()), "bf16": args.bf16,
            "gradient_checkpointing": args.gradient_checkpointing}


def child(args) -> None:
    import torch
    torch.manual_seed(0)
    rows = json.loads((Path(args.workdir) / "data.json").read_text())
    extra = {} if args.impl == "ours" else {"fp32": args.impl == "trl_fp32"}
    fn = run_ours if args.impl == "ours" else run_trl
    res = fn(Path(args.workdir) / args.preset, rows, args.steps, args.batch, args.grouped, **extra)
    res.update(impl=args.impl, preset=args.preset, grouped=args.grouped, peak_rss_mb=round(peak_mb()), threads=torch.get_num_threads())
    print("RESULT " + json.dumps(res))


def run_child(impl: str, preset: str, work: Path, args, grouped: bool, peak: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--impl", impl, "--preset", preset, "--workdir", str(work),
                          "--steps", str(args.steps), "--batch", str(args.batch)] + (["--grouped"] if grouped else []),
                         capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        raise SystemExit(f"{impl}/{preset} failed:\n{out.stderr[-3000:]}")
    res = json.loads(line[0][7:])
    res["mfu"] = 6 * res["params"] * res["rate_tokens"] / peak
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--steps", type=int, default=None, help=f"steps per run (default per preset: {STEPS})")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="runs per implementation (interleaved); the fastest is kept")
    p.add_argument("--impl")
    p.add_argument("--preset")
    p.add_argument("--workdir")
    p.add_argument("--grouped", action="store_true", help="(child) length-grouped batches")
    p.add_argument("--grouping", default="off,on", help="run without and/or with length-grouped batches")
    p.add_argument("--out", default="benchmarks/results/sft.json")
    args = p.parse_args()
    if args.impl:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="sftbench-"))
    peak = matmul_peak_flops()
    results = []
    fixed = args.steps
    for preset in args.presets.split(","):
        args.steps = fixed or STEPS.get(preset, 30)
        prepare(work, preset, args.steps * args.batch * 2)
        for grouping in args.grouping.split(","):
            row = {"preset": preset, "grouped": grouping == "on", "steps": args.steps}
            row.update(fastest_of(lambda impl, _: run_child(impl, preset, work, args, grouping == "on", peak),
                                  ("ours", "trl", "trl_fp32"), args.repeats, "rate_tokens"))
            row["ratio"] = row["ours"]["rate_tokens"] / row["trl"]["rate_tokens"]
            row["ratio_fp32"] = row["ours"]["rate_tokens"] / row["trl_fp32"]["rate_tokens"]
            results.append(row)
    print(f"\nmeasured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    print("TRL: as shipped (bf16 autocast + gradient checkpointing) | fp32 without checkpointing (our arithmetic)")
    print(f"{'preset':<8}{'grouped':>8}{'params':>9}{'ours tok/s':>12}{'TRL tok/s':>11}{'ratio':>7}{'TRL fp32':>10}"
          f"{'ratio':>7}{'ours MB':>9}{'TRL MB':>8}{'fp32 MB':>9}{'ours MFU':>10}{'TRL fp32 MFU':>14}")
    for r in results:
        o, t, f = r["ours"], r["trl"], r["trl_fp32"]
        print(f"{r['preset']:<8}{str(r['grouped']):>8}{o['params'] / 1e6:>8.2f}M{o['rate_tokens']:>12.0f}"
              f"{t['rate_tokens']:>11.0f}{r['ratio']:>7.2f}{f['rate_tokens']:>10.0f}{r['ratio_fp32']:>7.2f}"
              f"{o['peak_rss_mb']:>9}{t['peak_rss_mb']:>8}{f['peak_rss_mb']:>9}{o['mfu']:>10.2%}{f['mfu']:>14.2%}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "matmul_peak_flops": peak, "results": results}, indent=2))


if __name__ == "__main__":
    main()
