"""Does compiling the decode step pay? The lean Llama decode step eagerly against ``ALIGNSTACK_COMPILE_DECODE``'s
static-cache step through ``torch.compile``, on the same model, prefill and tokens, one run.

    python benchmarks/decode_compile_bench.py [--presets tiny,small] [--batch 32] [--prompt 15] [--new 24]

Per preset (built from scratch): the time to compile (the first batch through the compiled step, minus an eager
batch), the per-step time of each path after warm-up (best of ``--repeats`` batches of ``--new`` steps), and the
break-even: how many decode steps the compiled path needs to win its compile time back. Writes
``benchmarks/results/decode_compile.json``. One intra-op thread, as the GRPO benchmark.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prompt", type=int, default=15)
    p.add_argument("--new", type=int, default=24)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default="benchmarks/results/decode_compile.json")
    a = p.parse_args()

    import torch
    from transformers import DynamicCache

    from alignstack.models.load import build_model
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.rollout import llama_decode
    from alignstack.world.corpus import corpus_documents
    torch.set_num_threads(1)
    tok = train_tokenizer(corpus_documents(0, 2000))
    results = []
    for preset in a.presets.split(","):
        torch.manual_seed(0)
        model = build_model(preset, tok).eval()
        ids = torch.randint(5, len(tok) - 1, (a.batch, a.prompt))
        att = torch.ones_like(ids)
        cache = DynamicCache()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=att, use_cache=True, past_key_values=cache)
        toks = [torch.randint(5, len(tok) - 1, (a.batch,)) for _ in range(a.new)]

        def batch(static: bool) -> float:
            dec = llama_decode.LlamaDecoder(model, cache, att, a.new, static=static)
            t0 = time.perf_counter()
            for s in range(a.new):
                dec.step(toks[s], torch.full((a.batch, 1), a.prompt + s))
            return time.perf_counter() - t0

        llama_decode._compiled_layers = None
        batch(False)
        eager = min(batch(False) for _ in range(a.repeats)) / a.new
        first = batch(True)                                    # compiles
        compiled = min(batch(True) for _ in range(a.repeats)) / a.new
        compile_s = first - a.new * compiled
        saved = eager - compiled
        row = {"preset": preset, "params": sum(x.numel() for x in model.parameters()), "batch": a.batch,
               "eager_ms_per_step": 1000 * eager, "compiled_ms_per_step": 1000 * compiled, "compile_s": compile_s,
               "speedup": eager / compiled, "fell_back": llama_decode._compile_failed,
               "break_even_steps": compile_s / saved if saved > 0 else None}
        results.append(row)
        be = f"{row['break_even_steps']:,.0f} decode steps" if row["break_even_steps"] else "never"
        print(f"{preset:<6} eager {row['eager_ms_per_step']:.2f} ms/step, compiled {row['compiled_ms_per_step']:.2f} "
              f"ms/step ({row['speedup']:.2f}×), compile {compile_s:.1f} s: pays back after {be}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    from machine import machine
    Path(a.out).write_text(json.dumps({"threads": 1, "machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
