"""DPO throughput: alignstack's ``dpo`` vs TRL's ``DPOTrainer`` on the same model, data and settings, one run.

    python benchmarks/dpo_bench.py [--preset tiny] [--steps 200] [--batch 8]

Each (implementation, reference mode) runs in its own subprocess (so peak RSS is its own) on the
same saved model (Llama preset built from scratch), the same preference pairs (world SFT prompts;
chosen = the demonstration, rejected = another prompt's demonstration), batch size, learning rate,
β = 0.1, sigmoid loss, max length 256 (ours: fp32, no
gradient checkpointing). TRL runs twice: as shipped (its configs default to bf16 mixed precision — CPU
autocast here — and gradient checkpointing) and at our arithmetic (``bf16=False``,
``gradient_checkpointing=False``): ``ratio_pairs`` is ours / TRL as shipped, ``ratio_pairs_fp32`` ours / TRL
at the same arithmetic. Two reference modes, the same on both sides:
``precomputed`` (ours: ``reference=precomputed``; TRL: ``precompute_ref_log_probs=True``) and
``live`` (a frozen copy of the model forwarded every step; TRL: ``ref_model=`` a copy). Only the
training steps are timed (after ``WARM`` warm-up steps): the precomputation pass is excluded on both
sides. Prints pairs/s, non-pad tokens/s, the ratio ours/TRL and peak RSS.
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
MAX_LEN = 256


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(workdir: Path, preset: str, n_rows: int) -> None:
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents, sft_rows

    tok = train_tokenizer(corpus_documents(0, 5000))
    save_pretrained_atomic(build_model(preset, tok), tok, workdir / preset)
    src = sft_rows(0, n_rows + 1)
    rows = [{"prompt": src[i]["messages"][:1],
             "chosen": [src[i]["messages"][1]],
             "rejected": [src[i + 1]["messages"][1]]} for i in range(n_rows)]
    (workdir / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run_ours(model_dir: Path, data: Path, steps: int, bs: int, reference: str) -> dict:
    from alignstack.config import DataConfig, LogConfig, ModelConfig, OptimConfig
    from alignstack.methods import dpo
    from alignstack.train import loop

    times: list[float] = []
    ntok: list[int] = []
    orig_step = loop.Trainer.step

    def timed_step(self, loss_fn, mbs, weights):   # benchmark-only instrumentation (not a subclass)
        out = orig_step(self, loss_fn, mbs, weights)
        times.append(time.perf_counter())
        return out
    loop.Trainer.step = timed_step
    orig_logps = dpo.batch_logps

    def counting_logps(model, items, pad_id, device=None):
        if model.training:
            ntok.append(sum(len(it.input_ids) for it in items))
        return orig_logps(model, items, pad_id, device)
    dpo.batch_logps = counting_logps
    cfg = dpo.DPOConfig(out=tempfile.mkdtemp(), model=ModelConfig(path=str(model_dir), max_length=MAX_LEN),
                        data=DataConfig(path=str(data)), loss="sigmoid", beta=0.1, reference=reference,
                        optim=OptimConfig(lr=1e-4, batch_size=bs, max_steps=steps, warmup_steps=0,
                                          schedule="constant", grad_clip=1.0, weight_decay=0.0),
                        log=LogConfig(progress=False, every=10 ** 9))
    r = dpo.train(cfg)
    return {"rate_pairs": (steps - WARM) * bs / (times[-1] - times[WARM - 1]),
            "rate_tokens": sum(ntok[WARM:steps]) / (times[-1] - times[WARM - 1]), "steps": r["steps"]}


def run_trl(model_dir: Path, data: Path, steps: int, bs: int, reference: str, fp32: bool = False) -> dict:
    warnings.filterwarnings("ignore")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    ref = AutoModelForCausalLM.from_pretrained(str(model_dir))
    times: list[float] = []
    ntok: list[int] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    rows = [json.loads(x) for x in data.read_text().splitlines()]
    args = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=bs, max_steps=steps, report_to=[],
                     logging_steps=10 ** 6, save_strategy="no", learning_rate=1e-4, lr_scheduler_type="constant",
                     warmup_steps=0, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0,
                     max_length=MAX_LEN, beta=0.1, loss_type=["sigmoid"], max_grad_norm=1.0, weight_decay=0.0,
                     precompute_ref_log_probs=reference == "precomputed", precompute_ref_batch_size=64,
                     **({"bf16": False, "gradient_checkpointing": False} if fp32 else {}))
    tr = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=tok, callbacks=[Timer()])
    orig = tr.training_step

    def counting_step(model, inputs, *a, **k):
        ntok.append(int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else
                    sum(int(v.sum()) for k_, v in inputs.items() if k_.endswith("attention_mask")))
        return orig(model, inputs, *a, **k)
    tr.training_step = counting_step
    tr.train()
    return {"rate_pairs": (steps - WARM) * bs / (times[-1] - times[WARM - 1]),
            "rate_tokens": sum(ntok[WARM:steps]) / (times[-1] - times[WARM - 1]), "steps": len(times),
            "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing}


def child(args) -> None:
    import torch

    torch.manual_seed(0)
    work = Path(args.workdir)
    extra = {} if args.impl == "ours" else {"fp32": args.impl == "trl_fp32"}
    fn = run_ours if args.impl == "ours" else run_trl
    res = fn(work / args.preset, work / "pairs.jsonl", args.steps, args.batch, args.reference, **extra)
    res.update(impl=args.impl, preset=args.preset, reference=args.reference, peak_rss_mb=round(peak_mb()),
               threads=torch.get_num_threads())
    print("RESULT " + json.dumps(res))


def run_child(impl: str, reference: str, work: Path, args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--impl", impl, "--preset", args.preset, "--workdir", str(work),
                          "--steps", str(args.steps), "--batch", str(args.batch), "--reference", reference],
                         capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        raise SystemExit(f"{impl}/{reference} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[0][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    # 200 steps: at ~20 ms a step, 20 of them left the rate to scheduler noise (ratios moved by 2× between runs)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="runs per implementation (interleaved); the fastest is kept")
    p.add_argument("--references", default="precomputed,live")
    p.add_argument("--impl")
    p.add_argument("--workdir")
    p.add_argument("--reference")
    p.add_argument("--out", default="benchmarks/results/dpo.json")
    args = p.parse_args()
    if args.impl:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="dpobench-"))
    prepare(work, args.preset, args.steps * args.batch + 16)
    results = []
    for reference in args.references.split(","):
        row = {"preset": args.preset, "reference": reference, "batch": args.batch, "steps": args.steps}
        row.update(fastest_of(lambda impl, _: run_child(impl, reference, work, args), ("ours", "trl", "trl_fp32"),
                              args.repeats, "rate_pairs"))
        row["ratio_pairs"] = row["ours"]["rate_pairs"] / row["trl"]["rate_pairs"]
        row["ratio_pairs_fp32"] = row["ours"]["rate_pairs"] / row["trl_fp32"]["rate_pairs"]
        results.append(row)
    print("TRL: as shipped (bf16 autocast + gradient checkpointing) | fp32 without checkpointing (our arithmetic)")
    print(f"{'reference':<12}{'ours pairs/s':>13}{'TRL pairs/s':>12}{'ratio':>7}{'TRL fp32':>10}{'ratio':>7}"
          f"{'ours MB':>9}{'TRL MB':>8}{'fp32 MB':>9}")
    for r in results:
        o, t, f = r["ours"], r["trl"], r["trl_fp32"]
        print(f"{r['reference']:<12}{o['rate_pairs']:>13.1f}{t['rate_pairs']:>12.1f}{r['ratio_pairs']:>7.2f}"
              f"{f['rate_pairs']:>10.1f}{r['ratio_pairs_fp32']:>7.2f}{o['peak_rss_mb']:>9}{t['peak_rss_mb']:>8}"
              f"{f['peak_rss_mb']:>9}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
