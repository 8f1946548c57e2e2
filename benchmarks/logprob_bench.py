"""Per-token log-probs with their backward, the step every RL and preference method takes at the LM head: ours
(``models.logprobs.token_logprobs``), the plain autograd formula it replaced (``gather − logsumexp`` over an fp32
copy, what alignstack ran before), and TRL's ``selective_log_softmax`` (its CPU path: a loop over rows; on a GPU
with Triton TRL runs a fused kernel instead), side by side in one run. Likewise the language-modelling loss of
pretraining and SFT: ours (``losses.lm.lm_loss_sum``) against Hugging Face's ``ForCausalLMLoss`` (an fp32 copy of
the logits into ``cross_entropy``: the loss TRL's ``SFTTrainer`` trains on, and ours before), every position a target.

    python benchmarks/logprob_bench.py [--batch 8] [--length 512] [--vocab 32000] [--temperature 0.9] [--threads 1]

Logits (batch × length × vocabulary, a Llama-2-sized vocabulary by default) are a leaf tensor in bf16 (the
mixed-precision case) and in fp32; each implementation runs in its own subprocess (so peak RSS is its own) the
forward and the backward of a weighted sum of the log-probs, after one warm-up, fastest of ``--iters``. Reported:
seconds, peak RSS above the logits and their gradient (which every implementation holds), and the largest error
of the log-probs against float64. Writes ``benchmarks/results/logprob.json``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from interleave import fastest_of  # benchmarks/ is on sys.path: the benchmarks run as scripts

IMPLS = ("ours", "autograd", "trl")
LM_IMPLS = ("lm_ours", "lm_hf")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(a) -> None:
    import torch
    torch.set_num_threads(a.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    g = torch.Generator().manual_seed(0)
    B, T, V, temp = a.batch, a.length, a.vocab, a.temperature
    ids = torch.randint(0, V, (B, T), generator=g)
    # drawn in its dtype and scaled in place: no fp32 temporary raises the peak before the timed part
    logits = torch.randn(B, T, V, generator=g, dtype=dtype).mul_(4).requires_grad_()
    w = torch.randn(B, T - 1, generator=g)
    if a.impl == "ours":
        from alignstack.models.logprobs import token_logprobs

        def fn():
            return token_logprobs(logits, ids, temp)
    elif a.impl == "autograd":
        def fn():
            x = logits[:, :-1].float()
            x = x / temp if temp != 1.0 else x
            return x.gather(-1, ids[:, 1:, None]).squeeze(-1) - torch.logsumexp(x, dim=-1)
    elif a.impl == "trl":
        from trl.trainer.utils import selective_log_softmax

        def fn():
            return selective_log_softmax(logits[:, :-1], ids[:, 1:], temperature=temp)
    elif a.impl == "lm_ours":                     # the LM loss (T = 1), summed: its "log-probs" are −NLL
        from alignstack.losses.lm import lm_loss_sum
        ones = torch.ones_like(ids)

        def fn():
            return -lm_loss_sum(logits, ids, ones)[0].reshape(1, 1)
    else:
        from transformers.loss.loss_utils import ForCausalLMLoss
        n_items = torch.tensor(B * (T - 1))

        def fn():
            return -(ForCausalLMLoss(logits, ids, V, num_items_in_batch=n_items) * n_items).reshape(1, 1)
    lm = a.impl.startswith("lm_")
    if lm:
        temp = 1.0
        w = torch.ones(1, 1)
    # the logits and their gradient, which every implementation holds: the baseline the peak is read over
    logits.grad = torch.zeros_like(logits)
    base = current_mb()
    times = []
    for _ in range(1 + a.iters):
        logits.grad = None
        t = time.perf_counter()
        lp = fn()
        (lp.float() * w).sum().backward()
        times.append(time.perf_counter() - t)
    peak = rss_mb() - base
    with torch.no_grad():                          # accuracy against float64, a row at a time (after the peak)
        err, total = 0.0, 0.0
        for b in range(B):
            x = logits[b, :-1].double() / temp
            ref = x.gather(-1, ids[b, 1:, None]).squeeze(-1) - torch.logsumexp(x, -1)
            total += float(ref.sum())
            if not lm:
                err = max(err, float((lp[b].double() - ref).abs().max()))
        if lm:                                     # the error of the mean NLL
            err = abs(float(lp.double().sum()) - total) / (B * (T - 1))
    print("RESULT " + json.dumps({"seconds": min(times[1:]), "rate": 1 / min(times[1:]), "peak_mb_over_inputs":
                                  round(peak), "max_abs_error_vs_fp64": err, "impl": a.impl}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="runs per implementation (interleaved); the fastest is kept")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impl")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--out", default="benchmarks/results/logprob.json")
    a = p.parse_args()
    if a.impl:
        return child(a)
    sys.path.insert(0, str(Path(__file__).parent))
    from machine import machine
    res = {"settings": {k: getattr(a, k) for k in ("batch", "length", "vocab", "temperature", "iters", "threads")},
           "machine": machine(), "results": [], "lm_loss": []}
    for dtype, impls in (("bf16", IMPLS), ("fp32", IMPLS), ("bf16", LM_IMPLS), ("fp32", LM_IMPLS)):
        def run(impl: str, rep: int) -> dict:
            cmd = [sys.executable, __file__, "--impl", impl, "--dtype", dtype] + [
                f"--{k}={getattr(a, k)}" for k in ("batch", "length", "vocab", "temperature", "iters", "threads")]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                raise SystemExit(f"{impl} ({dtype}) failed:\n{out.stderr[-3000:]}")
            return json.loads(line[0][7:])
        row = {"dtype": dtype, **fastest_of(run, impls, a.repeats, "rate")}
        for impl in impls[1:]:
            row[f"speedup_vs_{impl}"] = row[impl]["seconds"] / row[impls[0]]["seconds"]
        res["lm_loss" if impls == LM_IMPLS else "results"].append(row)
    print(f"{a.batch} × {a.length} positions × {a.vocab:,} vocabulary, T = {a.temperature}, forward + backward, "
          f"{a.threads} thread; {res['machine']['cpu']}")
    print(f"{'logits':<8}{'implementation':<34}{'seconds':>9}{'peak MB':>9}{'max |err|':>11}")
    names = {"ours": "ours (token_logprobs)", "autograd": "autograd formula (ours before)",
             "trl": "TRL selective_log_softmax", "lm_ours": "LM loss: ours (lm_loss_sum)",
             "lm_hf": "LM loss: HF ForCausalLMLoss"}
    for row in res["results"] + res["lm_loss"]:
        impls = [k for k in names if k in row]
        for impl in impls:
            r = row[impl]
            print(f"{row['dtype']:<8}{names[impl]:<34}{r['seconds']:>9.3f}{r['peak_mb_over_inputs']:>9}"
                  f"{r['max_abs_error_vs_fp64']:>11.1e}")
        print(f"{'':<8}ours is " + ", ".join(f"{row['speedup_vs_' + k]:.2f}× {names[k]}" for k in impls[1:]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
