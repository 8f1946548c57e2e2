"""Reward-model throughput: alignstack's ``reward_model`` vs TRL's ``RewardTrainer``, same model/data, one run.

    python benchmarks/rm_bench.py [--preset tiny] [--steps 200] [--batch 8]

Each implementation runs in its own subprocess (so peak RSS is its own) on the same saved model
(Llama preset built from scratch; a fresh scalar head on its trunk on both sides), the same
preference pairs (world SFT prompts; chosen = the demonstration, rejected = another prompt's
demonstration), pairwise Bradley–Terry loss without margin, batch size (pairs), learning rate,
max length 256 (ours: fp32, no
gradient checkpointing). TRL runs twice: as shipped (its configs default to bf16 mixed precision — CPU
autocast here — and gradient checkpointing) and at our arithmetic (``bf16=False``,
``gradient_checkpointing=False``): ``ratio_pairs`` is ours / TRL as shipped, ``ratio_pairs_fp32`` ours / TRL
at the same arithmetic. Ours: ``methods.reward_model.fit`` (objective=pairwise; both responses of
every pair in one padded forward). TRL: ``RewardTrainer``. Only training steps are timed, after
``WARM`` warm-up steps. Prints pairs/s, non-pad tokens/s, the ratio ours/TRL and peak RSS.
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


def run_ours(model_dir: Path, data: Path, steps: int, bs: int) -> dict:
    from alignstack.config import LogConfig, ModelConfig, OptimConfig
    from alignstack.data.render import ChatRenderer
    from alignstack.methods import reward_model as RM
    from alignstack.models.heads import reward_model_from_causal_lm
    from alignstack.models.load import load_tokenizer

    tok = load_tokenizer(model_dir)
    model = reward_model_from_causal_lm(model_dir, tok, 0)
    rows = RM.load_rows(str(data))     # validated and normalised, as the method reads them
    examples = RM.build_examples(rows, "pairwise", "none", ChatRenderer(tok, MAX_LEN), str(data))
    cfg = RM.RewardModelConfig(out=tempfile.mkdtemp(), model=ModelConfig(path=str(model_dir), max_length=MAX_LEN),
                               objective="pairwise",
                               optim=OptimConfig(lr=1e-4, batch_size=bs, max_steps=steps, warmup_steps=0,
                                                 schedule="constant", grad_clip=1.0, weight_decay=0.0),
                               log=LogConfig(progress=False, every=10 ** 9))
    times: list[float] = []
    RM.fit(model, tok, examples, cfg, on_step=lambda tr, s: times.append(time.perf_counter()))
    # tokens per step: the same deterministic index stream as the run
    from alignstack.train.supervised import IndexStream
    stream = IndexStream(len(examples), cfg.seed)
    ntok = [sum(len(it.input_ids) for j in range(bs) for it in examples[stream(s * bs + j)].items)
            for s in range(steps)]
    return {"rate_pairs": (steps - WARM) * bs / (times[-1] - times[WARM - 1]),
            "rate_tokens": sum(ntok[WARM:]) / (times[-1] - times[WARM - 1]), "steps": len(times)}


def run_trl(model_dir: Path, data: Path, steps: int, bs: int, fp32: bool = False) -> dict:
    warnings.filterwarnings("ignore")
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    times: list[float] = []
    ntok: list[int] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    rows = [json.loads(x) for x in data.read_text().splitlines()]
    rows = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows]
    args = RewardConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=bs, max_steps=steps, report_to=[],
                        logging_steps=10 ** 6, save_strategy="no", learning_rate=1e-4, lr_scheduler_type="constant",
                        warmup_steps=0, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0,
                        max_length=MAX_LEN, max_grad_norm=1.0, weight_decay=0.0, **({"bf16": False, "gradient_checkpointing": False} if fp32 else {}))
    tr = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                       callbacks=[Timer()])
    orig = tr.training_step

    def counting_step(model, inputs, *a, **k):
        ntok.append(sum(int(v.sum()) for k_, v in inputs.items() if k_.endswith("attention_mask")))
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
    res = fn(work / args.preset, work / "pairs.jsonl", args.steps, args.batch, **extra)
    res.update(impl=args.impl, preset=args.preset, peak_rss_mb=round(peak_mb()),
               threads=torch.get_num_threads())
    print("RESULT " + json.dumps(res))


def run_child(impl: str, work: Path, args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--impl", impl, "--preset", args.preset, "--workdir", str(work),
                          "--steps", str(args.steps), "--batch", str(args.batch)],
                         capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[0][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    # 200 steps: at ~20 ms a step, 20 of them left the rate to scheduler noise (ratios moved by 2× between runs)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="runs per implementation (interleaved); the fastest is kept")
    p.add_argument("--impl")
    p.add_argument("--workdir")
    p.add_argument("--out", default="benchmarks/results/rm.json")
    args = p.parse_args()
    if args.impl:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="rmbench-"))
    prepare(work, args.preset, args.steps * args.batch + 16)
    row = {"preset": args.preset, "batch": args.batch, "steps": args.steps}
    row.update(fastest_of(lambda impl, _: run_child(impl, work, args), ("ours", "trl", "trl_fp32"), args.repeats,
                          "rate_pairs"))
    row["ratio_pairs"] = row["ours"]["rate_pairs"] / row["trl"]["rate_pairs"]
    row["ratio_tokens"] = row["ours"]["rate_tokens"] / row["trl"]["rate_tokens"]
    row["ratio_pairs_fp32"] = row["ours"]["rate_pairs"] / row["trl_fp32"]["rate_pairs"]
    results = [row]
    o, t, f = row["ours"], row["trl"], row["trl_fp32"]
    print(f"pairs/s ours {o['rate_pairs']:.1f}, TRL as shipped (bf16 autocast + gradient checkpointing) "
          f"{t['rate_pairs']:.1f} (ratio {row['ratio_pairs']:.2f}), TRL fp32 without checkpointing "
          f"{f['rate_pairs']:.1f} (ratio {row['ratio_pairs_fp32']:.2f}); tokens/s ours {o['rate_tokens']:.0f} TRL "
          f"{t['rate_tokens']:.0f}; peak RSS ours {o['peak_rss_mb']} MB, TRL {t['peak_rss_mb']} / {f['peak_rss_mb']} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
