"""GPU benchmark: ours and TRL side by side — SFT, DPO and GRPO on a ~0.5B Qwen2-shaped model and the tiny preset.

    python benchmarks/gpu.py                 # a GPU machine: both sizes, bf16 mixed precision (~5 min, H100 class)
    python benchmarks/gpu.py --cpu-tiny      # CI: the tiny preset on the CPU in fp32, a few steps (keeps it working)
    options: --sizes 0.5b,tiny  --tasks sft,dpo,grpo  --steps N  --skip-trl  --peak-tflops X  --out PATH

Models are made from a config with random weights (nothing is downloaded): ``0.5b`` has Qwen2-0.5B's trunk
(hidden 896, 24 layers, 14 heads, 2 kv heads, MLP 4864, tied embeddings) in the Llama architecture, so it
takes our lean decode path; the world tokenizer's 690-token vocabulary replaces Qwen's 152k, so it has 0.36B
parameters (Qwen's embeddings would add 0.14B that cost little compute). Data: the built-in world (SFT
conversations, DPO pairs, GRPO prompts with a cheap digit-share reward). Settings are pinned alike on both
sides (batch, lengths, lr, β, K completions per prompt, max new tokens, one optimizer step per generation
batch, bf16 mixed precision on a GPU / fp32 on the CPU, reference model live for DPO).

Every (size, task, implementation) runs in its own subprocess, so each peak memory is its own (``--cpu-tiny``
runs them in one process: a smoke run, where start-up would dominate); one that fails is recorded with its
error and the rest still run. On a GPU, GRPO also runs as ``ours_compiled`` (``ALIGNSTACK_COMPILE_DECODE=1``: the
decode step through ``torch.compile`` with a static KV cache), which does not pay on the CPU. Figures: tokens/s (SFT, DPO: non-pad tokens through
the policy per second; GRPO: completion tokens), completions/s (GRPO), MFU (model FLOPs per second over the
card's dense bf16 peak — on the CPU over a measured fp32 matmul peak), peak memory (GPU: max allocated; CPU:
peak RSS). The FLOPs per token: SFT 6N, DPO 8N (policy forward+backward, reference forward), GRPO 2N per
generated token + 8N per prompt⊕completion token (reference forward, policy forward+backward); N = parameters
without the input embedding. Writes ``benchmarks/results/gpu.json`` (device name included). TRL and
``datasets`` are optional: without them only ours runs, and the output says so.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=True)
# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; matched on the device name
BF16_PEAK = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("H800", 989.0), ("A100", 312.0),
             ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0),
             ("RTX 4090", 165.0), ("RTX 3090", 71.0)]
# per size: SFT/DPO batch, max length, GRPO prompts × K, max new tokens, lr
SETTINGS = {"0.5b": dict(batch=8, max_len=256, prompts=8, k=8, max_new=64),
            "tiny": dict(batch=8, max_len=256, prompts=4, k=8, max_new=24)}


sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpo_bench import reward  # noqa: E402  (the same digit-share reward as the CPU GRPO benchmark)


# ---------------------------------------------------------------------------------------------- preparation
def prepare(work: Path, size: str, n_docs: int, n_rows: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.data.sources import write_jsonl
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents, prompt_set, sft_rows
    torch.manual_seed(0)
    tok = train_tokenizer(corpus_documents(0, n_docs))
    if size == "tiny":
        model = build_model("tiny", tok)
    else:
        cfg = LlamaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, **QWEN2_05B)
        model = LlamaForCausalLM(cfg)
    save_pretrained_atomic(model, tok, work / "model")
    src = sft_rows(0, n_rows + 1)
    write_jsonl(work / "sft.jsonl", [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in src[:n_rows]])
    write_jsonl(work / "pairs.jsonl", [{"prompt": src[i]["messages"][:1], "chosen": [src[i]["messages"][1]],
                                        "rejected": [src[i + 1]["messages"][1]]} for i in range(n_rows)])
    write_jsonl(work / "prompts.jsonl", [{"prompt": t.to_row()["prompt"]} for t in prompt_set(0, "train", 256)])


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- runs
class Clock:
    """Step end times; the rate counts the steps after ``warm`` (compilation, allocator and cache warm-up)."""

    def __init__(self, warm: int):
        self.t: list[float] = []
        self.warm = warm

    def tick(self):
        import torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.t.append(time.perf_counter())

    def span(self) -> float:
        return self.t[-1] - self.t[self.warm - 1]

    def rate(self, per_step: list[float]) -> float:
        return sum(per_step[self.warm:len(self.t)]) / self.span()


def ours(task: str, work: Path, s: dict, gpu: bool, steps: int, warm: int) -> dict:
    from alignstack.config import DistConfig, LogConfig, ModelConfig, OptimConfig
    from alignstack.train import loop
    dist = DistConfig(mixed_precision="bf16" if gpu else "no")
    log = LogConfig(progress=False, every=10 ** 9)
    optim = OptimConfig(lr=1e-5, batch_size=s["batch"], max_steps=steps, warmup_steps=0, schedule="constant",
                        grad_clip=1.0, weight_decay=0.0)
    clock = Clock(warm)
    if task == "sft":
        from alignstack.data.render import ChatRenderer
        from alignstack.models.load import load_model, load_tokenizer
        from alignstack.train.supervised import BatchPlan, fit
        tok, model = load_tokenizer(work / "model"), load_model(work / "model")
        r = ChatRenderer(tok, max_length=s["max_len"])
        items = [r.prompt_completion(x["prompt"], x["completion"][0]["content"]) for x in rows(work / "sft.jsonl")]
        fit(model, tok, items, optim, tempfile.mkdtemp(), log=log, dist=dist, on_step=lambda tr, st: clock.tick())
        plan = BatchPlan(len(items), 0, s["batch"])
        ntok = [float(sum(len(items[i].input_ids) for i in plan(k))) for k in range(steps)]
        return {"tokens_per_s": clock.rate(ntok)}
    if task == "dpo":
        from alignstack.config import DataConfig
        from alignstack.methods import dpo
        ntok: list[float] = []
        real_step, real_logps = loop.Trainer.step, dpo.batch_logps

        def step(self, *a, **kw):                 # benchmark-only instrumentation (not a subclass)
            out = real_step(self, *a, **kw)
            clock.tick()
            return out

        def logps(model, items, pad_id, device=None):
            if model.training:
                ntok.append(float(sum(len(it.input_ids) for it in items)))
            return real_logps(model, items, pad_id, device)
        loop.Trainer.step, dpo.batch_logps = step, logps
        cfg = dpo.DPOConfig(out=tempfile.mkdtemp(), model=ModelConfig(path=str(work / "model"), max_length=s["max_len"]),
                            data=DataConfig(path=str(work / "pairs.jsonl")), loss="sigmoid", beta=0.1,
                            reference="live", optim=optim, log=log, dist=dist)
        try:
            dpo.train(cfg)
        finally:                                   # --cpu-tiny runs everything in one process
            loop.Trainer.step, dpo.batch_logps = real_step, real_logps
        return {"tokens_per_s": clock.rate(ntok), "pairs_per_s": s["batch"] * (len(clock.t) - warm) / clock.span()}
    from alignstack.config import load
    from alignstack.methods import grpo
    out = Path(tempfile.mkdtemp())
    cfg = load(grpo.GRPOConfig, overrides=[
        f"out={out}", f"model.path={work / 'model'}", f"prompts=rows:{work / 'prompts.jsonl'}",
        "reward=import:grpo_bench:reward", f"steps={steps}", f"prompts_per_step={s['prompts']}", f"num_generations={s['k']}",
        f"max_new_tokens={s['max_new']}", "beta=0.04", "aggregation=sequence", "scale=std", "temperature=1.0",
        "optim.lr=1e-5", "log.progress=false", "log.every=1", "missing_eos_penalty=null",
        f"dist.mixed_precision='{dist.mixed_precision}'"])
    grpo.train(cfg)
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "reward" in r]
    times = [r["time"] for r in logged]
    n = s["prompts"] * s["k"]
    cps = n * (len(times) - warm) / (times[-1] - times[warm - 1])
    length = sum(r["length"] for r in logged[warm:]) / max(1, len(logged) - warm)
    return {"completions_per_s": cps, "tokens_per_s": cps * length, "completion_length": length}


def trl(task: str, work: Path, s: dict, gpu: bool, steps: int, warm: int) -> dict:
    warnings.filterwarnings("ignore")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    clock = Clock(warm)
    ntok: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clock.tick()

    tok = AutoTokenizer.from_pretrained(str(work / "model"))
    model = AutoModelForCausalLM.from_pretrained(str(work / "model"))
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=steps, report_to=[], logging_steps=10 ** 6,
                  save_strategy="no", learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0,
                  use_cpu=not gpu, bf16=gpu, dataloader_num_workers=0, disable_tqdm=True, seed=0, max_grad_norm=1.0,
                  # TRL's configs turn gradient checkpointing on by default; ours does not recompute: the same
                  # arithmetic on both sides
                  gradient_checkpointing=False, weight_decay=0.0)

    def counting(tr):
        orig = tr.training_step

        def step(model, inputs, *a, **k):
            ntok.append(float(sum(int(v.sum()) for key, v in inputs.items() if key.endswith("attention_mask"))))
            return orig(model, inputs, *a, **k)
        tr.training_step = step
        return tr

    if task == "sft":
        from trl import SFTConfig, SFTTrainer
        args = SFTConfig(per_device_train_batch_size=s["batch"], max_length=s["max_len"], packing=False, **common)
        counting(SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows(work / "sft.jsonl")),
                            processing_class=tok, callbacks=[Timer()])).train()
        return {"tokens_per_s": clock.rate(ntok)}
    if task == "dpo":
        from trl import DPOConfig, DPOTrainer
        ref = AutoModelForCausalLM.from_pretrained(str(work / "model"))
        args = DPOConfig(per_device_train_batch_size=s["batch"], max_length=s["max_len"], beta=0.1,
                         loss_type=["sigmoid"], precompute_ref_log_probs=False, **common)
        counting(DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows(work / "pairs.jsonl")),
                            processing_class=tok, callbacks=[Timer()])).train()
        return {"tokens_per_s": clock.rate(ntok), "pairs_per_s": s["batch"] * (len(clock.t) - warm) / clock.span()}
    from trl import GRPOConfig, GRPOTrainer
    n = s["prompts"] * s["k"]
    lengths: list[float] = []

    def counted_reward(prompts, completions, completion_ids=None, **kw):
        if completion_ids is not None:
            lengths.append(sum(len(c) for c in completion_ids) / max(1, len(completion_ids)))
        return reward(prompts, completions)
    args = GRPOConfig(per_device_train_batch_size=n, gradient_accumulation_steps=1, steps_per_generation=1,
                      num_iterations=1, num_generations=s["k"], max_completion_length=s["max_new"], beta=0.04,
                      loss_type="grpo", scale_rewards="group", temperature=1.0, top_p=1.0, **common)
    GRPOTrainer(model=model, reward_funcs=counted_reward, args=args, train_dataset=Dataset.from_list(rows(work / "prompts.jsonl")),
                processing_class=tok, callbacks=[Timer()]).train()
    cps = n * (len(clock.t) - warm) / clock.span()
    length = sum(lengths[warm:]) / max(1, len(lengths) - warm) if lengths else float(s["max_new"])
    return {"completions_per_s": cps, "tokens_per_s": cps * length, "completion_length": length}


def run_one(impl: str, task: str, size: str, work: Path, steps: int, warm: int, cpu_tiny: bool) -> dict:
    import torch
    torch.manual_seed(0)
    gpu = torch.cuda.is_available() and not cpu_tiny
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    if impl == "ours_compiled":                 # GRPO with the compiled static-cache decode step (llama_decode)
        os.environ["ALIGNSTACK_COMPILE_DECODE"] = "1"
    fn = ours if impl.startswith("ours") else trl
    res = fn(task, work, SETTINGS[size], gpu, steps, warm)
    res["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20 if gpu else
                               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    res["peak_mem_kind"] = "gpu max allocated" if gpu else \
        ("peak RSS of the whole --cpu-tiny run (one process)" if cpu_tiny else "peak RSS")
    return res


def child(a) -> None:
    print("RESULT " + json.dumps(run_one(a.impl, a.task, a.size, Path(a.workdir), a.steps, a.warm, a.cpu_tiny)))


def in_process(impl: str, task: str, size: str, work: Path, steps: int, warm: int) -> dict:
    """--cpu-tiny: one run in this process (three interpreters' start-up would dominate a CI smoke run)."""
    import traceback
    try:
        return run_one(impl, task, size, work, steps, warm, True)
    except Exception as e:  # noqa: BLE001 — recorded per run, like a failed subprocess
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"[-500:]}


# ---------------------------------------------------------------------------------------------- driver
def model_flops(task: str, res: dict, n_params: float, prompt_len: float) -> float:
    """Model FLOPs per second of a run (see the module docstring)."""
    if task == "sft":
        return 6 * n_params * res["tokens_per_s"]
    if task == "dpo":
        return 8 * n_params * res["tokens_per_s"]
    L = res["completion_length"]
    return res["completions_per_s"] * (2 * n_params * L + 8 * n_params * (prompt_len + L))


def device_info(cpu_tiny: bool, peak_tflops: float | None) -> dict:
    import torch
    if torch.cuda.is_available() and not cpu_tiny:
        name = torch.cuda.get_device_name(0)
        peak = peak_tflops or next((p for key, p in BF16_PEAK if key in name), None)
        return {"device": name, "gpu": True, "dtype": "bf16 mixed precision", "peak_tflops": peak,
                "peak_source": "--peak-tflops" if peak_tflops else ("data sheet (dense bf16)" if peak else "unknown")}
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.5:
        a @ b
        k += 1
    import platform
    return {"device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "gpu": False, "dtype": "fp32", "peak_tflops": 2 * 1024 ** 3 * k / (time.perf_counter() - t0) / 1e12,
            "peak_source": "measured fp32 matmul (1024³)"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-tiny", action="store_true", help="tiny preset on the CPU, fp32, few steps (CI)")
    p.add_argument("--sizes", default=None, help="comma list of 0.5b,tiny (default: both; --cpu-tiny: tiny)")
    p.add_argument("--tasks", default="sft,dpo,grpo")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 12; --cpu-tiny 3)")
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if not in the table")
    p.add_argument("--out", default="benchmarks/results/gpu.json")
    p.add_argument("--impl")
    p.add_argument("--task")
    p.add_argument("--size")
    p.add_argument("--workdir")
    p.add_argument("--warm", type=int, default=None)
    a = p.parse_args()
    steps = a.steps or (3 if a.cpu_tiny else 12)
    warm = a.warm or (1 if a.cpu_tiny else 3)
    if a.impl:
        a.steps, a.warm = steps, warm
        return child(a)
    t_start = time.perf_counter()
    sizes = (a.sizes or ("tiny" if a.cpu_tiny else "0.5b,tiny")).split(",")
    tasks = a.tasks.split(",")
    missing = [m for m in ("trl", "datasets") if importlib.util.find_spec(m) is None]
    impls = ["ours"] + ([] if a.skip_trl or missing else ["trl"])
    note = ("TRL skipped (--skip-trl)" if a.skip_trl else
            f"TRL not run: {' and '.join(missing)} not installed (pip install trl datasets)" if missing else None)
    if note:
        print(f"[gpu.py] {note}; running ours only", flush=True)
    info = device_info(a.cpu_tiny, a.peak_tflops)
    print(f"[gpu.py] device: {info['device']} ({info['dtype']}; peak {info['peak_tflops']} TFLOP/s, "
          f"{info['peak_source']})", flush=True)
    result = {**info, "cpu_tiny": a.cpu_tiny, "steps": steps, "warm": warm, "note": note, "runs": {}}
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"gpubench-{size}-"))
        prepare(work, size, 1500 if a.cpu_tiny else 5000, 64 if a.cpu_tiny else 2000)
        n_params, prompt_len = _model_stats(work)
        result["runs"][size] = {"params": n_params, "settings": SETTINGS[size]}
        for task in tasks:
            row = result["runs"][size][task] = {}
            # GRPO also with the compiled decode step on a GPU, where launch overhead may make it pay (not on CPU:
            # benchmarks/decode_compile_bench.py)
            for impl in impls + (["ours_compiled"] if task == "grpo" and not a.cpu_tiny else []):
                cmd = [sys.executable, __file__, "--impl", impl, "--task", task, "--size", size, "--workdir", str(work),
                       "--steps", str(steps), "--warm", str(warm)] + (["--cpu-tiny"] if a.cpu_tiny else [])
                t0 = time.perf_counter()
                if a.cpu_tiny:
                    res = in_process(impl, task, size, work, steps, warm)
                else:
                    out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(Path(__file__).parent))
                    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
                    res = json.loads(line[0][7:]) if out.returncode == 0 and line else \
                        {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][-500:]}
                if "error" in res:
                    row[impl] = res
                    print(f"[gpu.py] {size} {task} {impl}: FAILED — {res['error'][-300:]}", flush=True)
                    continue
                peak = info["peak_tflops"]
                res["mfu"] = model_flops(task, res, n_params, prompt_len) / (peak * 1e12) if peak else None
                res["wall_s"] = round(time.perf_counter() - t0, 1)
                row[impl] = res
            if note:
                row.setdefault("trl", {"skipped": note})
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    print_table(result)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))


def _model_stats(work: Path) -> tuple[float, float]:
    from transformers import AutoConfig

    from alignstack.data.render import ChatRenderer
    from alignstack.models.load import load_tokenizer
    cfg = AutoConfig.from_pretrained(str(work / "model"))
    h, L, i = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    n = L * (2 * h * h + 2 * h * kv + 3 * h * i) + h * cfg.vocab_size       # blocks + LM head
    tok = load_tokenizer(work / "model")
    r = ChatRenderer(tok)
    ps = [r.prompt_ids(x["prompt"]) for x in rows(work / "prompts.jsonl")[:64]]
    return float(n), sum(map(len, ps)) / len(ps)


def print_table(r: dict) -> None:
    print(f"\n{r['device']} — {r['dtype']}; MFU vs {r['peak_tflops'] and round(r['peak_tflops'], 3)} TFLOP/s "
          f"({r['peak_source']})")
    print(f"{'size':<6}{'task':<6}{'impl':<14}{'tokens/s':>11}{'compl/s':>9}{'MFU':>8}{'peak MB':>9}")
    for size, runs in r["runs"].items():
        for task in ("sft", "dpo", "grpo"):
            for impl, x in runs.get(task, {}).items():
                if "error" in x or "skipped" in x:
                    print(f"{size:<6}{task:<6}{impl:<14}  {x.get('error') or x.get('skipped')}")
                    continue
                cps = f"{x['completions_per_s']:.1f}" if "completions_per_s" in x else "-"
                mfu = f"{x['mfu']:.1%}" if x.get("mfu") is not None else "-"
                print(f"{size:<6}{task:<6}{impl:<14}{x['tokens_per_s']:>11.0f}{cps:>9}{mfu:>8}{x['peak_mem_mb']:>9}")


if __name__ == "__main__":
    main()
