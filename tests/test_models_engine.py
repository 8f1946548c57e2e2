import subprocess
import sys

import pytest
import torch

from alignstack.data.render import ChatRenderer
from alignstack.models.logprobs import token_logprobs
from alignstack.models.tokenizer import stop_token_ids
from alignstack.rollout.engine import SamplingConfig, sample
from alignstack.rollout.sampling import inverse_cdf


def test_engine_matches_stepwise_forward(nano):
    model, tok = nano["model"], nano["tokenizer"]
    model.eval()
    r = ChatRenderer(tok)
    prompts = [r.prompt_ids([{"role": "user", "content": q}]) for q in ("What is 3 + 4?", "Sort: c a b d", "Hi")]
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.9)
    stops = stop_token_ids(tok)
    g = sample(model, prompts, cfg, stops, tok.pad_token_id, torch.Generator().manual_seed(123))
    # reference: no cache, one full forward per token, same generator draws in the same order
    gen = torch.Generator().manual_seed(123)
    # the engine sorts prompts by length and samples all active rows together; replicate per row order
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    seqs = {i: list(prompts[i]) for i in order}
    active = list(order)
    ref_tokens = {i: [] for i in order}
    ref_lps = {i: [] for i in order}
    with torch.no_grad():
        for _ in range(cfg.max_new_tokens):
            if not active:
                break
            rows = []
            for i in active:
                out = model(input_ids=torch.tensor([seqs[i]])).logits[0, -1] / cfg.temperature
                rows.append(out)
            logits = torch.stack(rows)
            tokn = inverse_cdf(torch.softmax(logits, -1), gen)
            lps = torch.log_softmax(logits, -1).gather(-1, tokn[:, None]).squeeze(-1)
            nxt = []
            for i, t, lp in zip(active, tokn.tolist(), lps.tolist()):
                seqs[i].append(t)
                ref_tokens[i].append(t)
                ref_lps[i].append(lp)
                if t not in stops:
                    nxt.append(i)
            active = nxt
    for i in range(len(prompts)):
        assert g.completion_ids[i] == ref_tokens[i]
        assert torch.allclose(torch.tensor(g.logprobs[i]), torch.tensor(ref_lps[i]), atol=1e-4)
    # the returned log-probs equal a teacher-forced pass over prompt ⊕ completion at the same temperature
    b = g.tensors(tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits,
                            b.input_ids, cfg.temperature)
    m = b.loss_mask[:, 1:].bool()
    assert torch.allclose(lp[m], b.old_logprobs[m], atol=1e-4)


def test_engine_stops_at_any_eos_and_greedy_is_deterministic(nano):
    model, tok = nano["model"], nano["tokenizer"]
    r = ChatRenderer(tok)
    p = [r.prompt_ids([{"role": "user", "content": "Hi"}])] * 4
    g1 = sample(model, p, SamplingConfig(max_new_tokens=8, greedy=True), stop_token_ids(tok), tok.pad_token_id)
    g2 = sample(model, p, SamplingConfig(max_new_tokens=8, greedy=True), stop_token_ids(tok), tok.pad_token_id)
    assert g1.completion_ids == g2.completion_ids
    # make every token a stop token: each completion is exactly one token and finished
    g = sample(model, p, SamplingConfig(max_new_tokens=8), list(range(len(tok))), tok.pad_token_id)
    assert all(len(c) == 1 for c in g.completion_ids) and all(g.finished)


def test_saved_model_loads_in_plain_transformers(nano):
    code = f"""
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
m = AutoModelForCausalLM.from_pretrained({str(nano['path'])!r})
t = AutoTokenizer.from_pretrained({str(nano['path'])!r})
p = pipeline("text-generation", model=m, tokenizer=t)
out = p(t.apply_chat_template([{{"role": "user", "content": "Hi"}}], tokenize=False, add_generation_prompt=True),
        max_new_tokens=5, do_sample=False)
assert isinstance(out[0]["generated_text"], str)
assert t.pad_token != t.eos_token
print("OK")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-2000:]
    assert "alignstack" not in code.split("print")[0]


@pytest.mark.parametrize("kv_heads,rope", [(4, "default"), (2, "default"), (4, "dynamic")])
def test_lean_llama_decode_matches_generic_forward(monkeypatch, kv_heads, rope):
    """The lean Llama decode path gives the same tokens and log-probs as the model's own forward,
    with left-padded prompts of different lengths and rows finishing (and being dropped) early: with plain
    multi-head and grouped-query attention, and with dynamic-NTK RoPE, whose frequencies change once positions pass
    ``max_position_embeddings`` (8 here), so its rotary module runs at every step instead of a table."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import llama_decode
    from alignstack.rollout.engine import SamplingConfig, sample
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads,
                      max_position_embeddings=128 if rope == "default" else 8, pad_token_id=0,
                      **({} if rope == "default" else
                         {"rope_parameters": {"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0}}))
    model = LlamaForCausalLM(cfg).eval()
    assert llama_decode.supports(model)
    assert (llama_decode.rope_tables(model, 8) is None) == (rope == "dynamic")
    prompts = [[5 + (i * 7 + j) % 90 for j in range(3 + i % 5)] for i in range(12)]
    stop = list(range(60, 68))                  # frequent enough that rows finish at different steps
    runs = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("ALIGNSTACK_FAST_DECODE", flag)
        runs[flag] = sample(model, prompts, SamplingConfig(16, 1.0), stop, 0, torch.Generator().manual_seed(3))
    a, b = runs["0"], runs["1"]
    assert a.completion_ids == b.completion_ids and a.finished == b.finished
    assert 0 < sum(a.finished) < len(prompts)
    for x, y in zip(a.logprobs, b.logprobs):
        assert x == pytest.approx(y, abs=1e-5)


def test_rope_with_a_signed_sin_table_is_hugging_faces_rotation_bit_for_bit():
    """The lean step's RoPE (halves swapped, times a sin whose first half is negated, the cos and sin looked up in a
    table of every position) gives the bits of Hugging Face's ``apply_rotary_pos_emb`` on the rotary module's output
    for the step's positions, in fp32 and bf16."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from alignstack.rollout import llama_decode
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4, max_position_embeddings=128, pad_token_id=0))
    pos = torch.tensor([[3], [17], [0], [40]])
    for dtype in (torch.float32, torch.bfloat16):
        model.to(dtype)
        q, k = (torch.randn(4, 4, 1, 16, generator=torch.Generator().manual_seed(s)).to(dtype) for s in (1, 2))
        cos, sin = model.model.rotary_emb(q, pos)                                  # (B, 1, D)
        want_q, want_k = apply_rotary_pos_emb(q, k, cos, sin)                      # unsqueezes dim 1: heads
        tab_cos, tab_sin = llama_decode.rope_tables(model, 64)
        c, s = tab_cos[pos.view(-1)].view(4, 1, 1, -1), tab_sin[pos.view(-1)].view(4, 1, 1, -1)
        assert torch.equal(llama_decode.rope(q, c, s), want_q) and torch.equal(llama_decode.rope(k, c, s), want_k)


def test_lean_step_modules_give_the_model_modules_bits():
    """The lean step's shortcuts (``F.linear`` for plain Linears, the fused ``F.rms_norm`` in fp32, the gated MLP
    through them) give the bits of the model's own modules; a bf16 RMSNorm keeps the module."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import llama_decode
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4, max_position_embeddings=128, pad_token_id=0)).eval()
    layer = model.model.layers[0]
    layer.input_layernorm.weight.data.normal_()                 # not all ones: the weight multiply counts
    x = torch.randn(5, 1, 64)
    with torch.no_grad():
        assert torch.equal(llama_decode._norm(layer.input_layernorm, x), layer.input_layernorm(x))
        assert torch.equal(llama_decode._linear(layer.self_attn.q_proj, x), layer.self_attn.q_proj(x))
        assert torch.equal(llama_decode._mlp(layer.mlp, x), layer.mlp(x))
        norm16 = layer.input_layernorm.to(torch.bfloat16)
        assert torch.equal(llama_decode._norm(norm16, x.bfloat16()), norm16(x.bfloat16()))


def _decode_both(model):
    """The lean step and the static-cache step fed the same tokens from the same prefill (rows dropped midway):
    their logits per step."""
    from transformers import DynamicCache

    from alignstack.rollout import llama_decode
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 90, (5, 6), generator=g)
    att = torch.ones(5, 6, dtype=torch.long)
    att[0, :2] = 0                                                  # a left-padded row
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    out = {}
    for static in (False, True):
        cache = DynamicCache()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, past_key_values=cache)
        dec = llama_decode.LlamaDecoder(model, cache, att, 8, static=static)
        a, rows, logits = att.clone(), torch.arange(5), []
        for s in range(8):
            if s == 4:                                              # two rows finish: the batch shrinks
                keep = torch.tensor([0, 2, 4])
                dec.select(keep)
                a, rows = a[keep], rows[keep]
            a = torch.cat([a, a.new_ones((a.shape[0], 1))], dim=1)
            tok = torch.randint(3, 90, (len(rows),), generator=torch.Generator().manual_seed(10 + s))
            logits.append(dec.step(tok, a.sum(-1, keepdim=True) - 1))
        out[static] = logits
    return out


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_static_cache_decode_step_matches_the_lean_step(monkeypatch, kv_heads):
    """ALIGNSTACK_COMPILE_DECODE's static cache (attention over the whole buffer, unwritten slots masked, writes at
    a tensor index) is the lean step's maths: the same logits at every step, before and after rows are dropped.
    torch.compile is replaced by the identity here (the maths); the next test compiles for real."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import llama_decode
    monkeypatch.setattr(llama_decode, "_compiled_layers", None)
    monkeypatch.setattr(llama_decode, "_compile_failed", False)
    monkeypatch.setattr(llama_decode.torch, "compile", lambda fn: fn)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=kv_heads,
                                         max_position_embeddings=128, pad_token_id=0)).eval()
    out = _decode_both(model)
    for x, y in zip(out[False], out[True]):
        assert x.shape == y.shape and torch.allclose(x, y, atol=1e-5)


@pytest.mark.slow
def test_compiled_decode_runs_and_falls_back_cleanly(monkeypatch):
    """ALIGNSTACK_COMPILE_DECODE=1 through inductor gives the lean step's logits (float tolerance); a compiler
    that fails warns once and decodes the same static step eagerly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import llama_decode
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=0)).eval()
    monkeypatch.setattr(llama_decode, "_compiled_layers", None)
    monkeypatch.setattr(llama_decode, "_compile_failed", False)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)              # no fallback: it really compiled
        out = _decode_both(model)
    for x, y in zip(out[False], out[True]):
        assert torch.allclose(x, y, atol=1e-4)

    def broken(fn):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler\nsecond line")
        return run
    monkeypatch.setattr(llama_decode, "_compiled_layers", None)
    monkeypatch.setattr(llama_decode.torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(RuntimeError: no C\+\+ compiler\); decoding"):
        out = _decode_both(model)
    assert llama_decode._compile_failed
    for x, y in zip(out[False], out[True]):
        assert torch.allclose(x, y, atol=1e-5)


def test_lean_decode_attention_over_a_bf16_cache_matches_fp32():
    """A prefill under bf16 autocast leaves a bf16 KV cache while the decode step's query is fp32: attention takes
    the cache's dtype for its matmuls, a fp32 softmax, and returns the query's dtype, close to the fp32 result."""
    from alignstack.rollout.llama_decode import attend
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, n, 8, generator=g) for n in (1, 6, 6))
    k, v = k[:, :2], v[:, :2]                                     # grouped-query: 2 kv heads for 4 query heads
    bias = torch.zeros(3, 1, 1, 6)
    bias[0, ..., :2] = float("-inf")                              # a left-padded row
    want = attend(q, k, v, bias, 8 ** -0.5)
    got = attend(q, k.bfloat16(), v.bfloat16(), bias.bfloat16(), 8 ** -0.5)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(got, want, atol=5e-2) and not torch.equal(got, want)


def test_lean_decode_under_autocast_keeps_a_low_precision_cache_attended_whole(monkeypatch):
    """Under bf16 autocast the lean decoder keeps its KV cache in bf16 (autocast's attention matmuls round it to
    bf16 anyway, so an fp32 cache was re-cast whole at every step) and attends over the whole buffer, which
    oneDNN's bf16 batched matmul takes without copying (a slice of the first S slots it copies). The logits match
    the fp32-cache decoder with growing spans, the layout before."""
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import llama_decode
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         pad_token_id=0)).eval()
    ids = torch.randint(3, 90, (5, 6), generator=torch.Generator().manual_seed(1))
    att = torch.ones(5, 6, dtype=torch.long)
    att[0, :2] = 0                                                  # a left-padded row
    seen = []
    real = llama_decode.attend
    monkeypatch.setattr(llama_decode, "attend", lambda q, k, v, *a: seen.append((k.dtype, k.shape[2],
                        k.is_contiguous(), v.is_contiguous())) or real(q, k, v, *a))

    def decode(old_layout: bool):
        if old_layout:
            monkeypatch.setattr(llama_decode, "cache_dtype", lambda x: x.dtype)
        seen.clear()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            cache = DynamicCache()
            model(input_ids=ids, attention_mask=att, position_ids=(att.cumsum(-1) - 1).clamp(min=0), use_cache=True,
                  past_key_values=cache)
            dec = llama_decode.LlamaDecoder(model, cache, att, 10, static=False)
            if old_layout:
                dec.full_span = False
            a, logits = att.clone(), []
            for s in range(10):
                a = torch.cat([a, a.new_ones((5, 1))], dim=1)
                tok = torch.randint(3, 90, (5,), generator=torch.Generator().manual_seed(10 + s))
                logits.append(dec.step(tok, a.sum(-1, keepdim=True) - 1).float())
        return logits, list(seen)

    new, seen_new = decode(False)
    old, seen_old = decode(True)
    assert {x[0] for x in seen_new} == {torch.bfloat16} and {x[0] for x in seen_old} == {torch.float32}
    assert {x[1] for x in seen_new} == {16} and all(c and d for _, _, c, d in seen_new)    # cap 6 + 10, packed
    assert {x[1] for x in seen_old} == {8, 16} and not all(c for _, _, c, _ in seen_old)
    for x, y in zip(new, old):
        # bit-equal on the CPUs tried: the masked slots add exact zeros; a kernel may still sum in another order
        assert torch.allclose(x, y, atol=1e-3, rtol=0), (x - y).abs().max()


@pytest.mark.parametrize("fast", ["0", "1"])
def test_shared_prefix_groups_give_the_same_samples_as_expanded_prompts(monkeypatch, fast):
    """A group's K samples prefill their prompt once and expand the KV cache: same tokens and log-probs
    as prefilling every repeated prompt (same seed), on the lean and the generic decode path, with
    prompts of different lengths, groups straddling chunk boundaries and rows finishing early."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignstack.rollout import engine
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    monkeypatch.setenv("ALIGNSTACK_FAST_DECODE", fast)
    base = [[5 + (i * 7 + j) % 90 for j in range(3 + i % 4)] for i in range(5)]
    prompts = [p for p in base for _ in range(4)]                 # 5 groups of K = 4
    stop = list(range(60, 68))
    calls = []
    real = engine.pad_left
    monkeypatch.setattr(engine, "pad_left", lambda rows, pad, m=1: calls.append(len(rows)) or real(rows, pad, m))
    runs = {}
    for share in (False, True):
        calls.clear()
        sc = SamplingConfig(16, 1.0, batch_size=6, share_prefix=share)   # chunks of 6 cut through groups
        runs[share] = (sample(model, prompts, sc, stop, 0, torch.Generator().manual_seed(5)), list(calls))
    (a, ca), (b, cb) = runs[False], runs[True]
    assert sum(ca) == 20 and sum(cb) < 20          # fewer prompt rows prefilled when sharing
    assert a.completion_ids == b.completion_ids and a.finished == b.finished
    assert 0 < sum(a.finished) < len(prompts)
    assert all(len({tuple(c) for c in b.completion_ids[g * 4:(g + 1) * 4]}) > 1 for g in range(5))  # rows differ
    for x, y in zip(a.logprobs, b.logprobs):
        assert x == pytest.approx(y, abs=1e-5)


def _small_llama(kv_heads=2):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=128, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("fast", ["0", "1"])
def test_finished_rows_leave_the_batch_in_bulk_without_changing_the_samples(monkeypatch, fast):
    """Finished rows leave the batch once they are DROP_FINISHED of it; until then they ride along and draw no
    random numbers. So the samples and log-probs are the same whether rows leave one by one (0), in bulk (the
    default) or never (> 1), on the lean and the generic decode path; and bulk drops make fewer batch sizes."""
    from alignstack.rollout import engine, llama_decode
    model = _small_llama()
    monkeypatch.setenv("ALIGNSTACK_FAST_DECODE", fast)
    prompts = [[5 + (i * 7 + j) % 90 for j in range(3 + i % 5)] for i in range(12)]
    stop = list(range(60, 68))                          # frequent enough that rows finish at different steps
    sizes: dict[float, set] = {}
    real_pick = engine.pick
    runs = {}
    for share in (0.0, engine.DROP_FINISHED, 1.01):
        monkeypatch.setattr(engine, "DROP_FINISHED", share)
        seen = sizes.setdefault(share, set())
        monkeypatch.setattr(engine, "pick", lambda lg, *a, _s=seen: _s.add(len(lg)) or real_pick(lg, *a))
        runs[share] = sample(model, prompts, SamplingConfig(16, 1.0), stop, 0, torch.Generator().manual_seed(3))
    a = runs[0.0]
    assert 3 < sum(a.finished) < len(prompts)
    for b in runs.values():
        assert b.completion_ids == a.completion_ids and b.finished == a.finished
        for x, y in zip(a.logprobs, b.logprobs):
            assert x == pytest.approx(y, abs=1e-5)
    assert llama_decode.supports(model) == (fast == "1")
    # pick sees the live rows only, so its sizes are the same; the decoder's batch shrinks in fewer steps
    assert sizes[0.0] == sizes[1.01] == sizes[engine.DROP_FINISHED]


def test_decode_attends_over_spans_rounded_to_the_shape_multiple(monkeypatch):
    """The lean decoder attends over the cache slots up to its step's, rounded up to SHAPE_MULTIPLE (the extra,
    unwritten slots masked), so a 20-token rollout gives a handful of attention shapes, not one per step; the
    samples match the generic forward's (the test above)."""
    from alignstack.data.collate import SHAPE_MULTIPLE
    from alignstack.rollout import engine, llama_decode
    model = _small_llama()
    spans, rows = [], []
    real = llama_decode.attend
    monkeypatch.setattr(llama_decode, "attend", lambda q, k, *a: spans.append(k.shape[2]) or real(q, k, *a))
    real_select = llama_decode.LlamaDecoder.select
    monkeypatch.setattr(llama_decode.LlamaDecoder, "select", lambda self, keep: rows.append(len(keep)) or
                        real_select(self, keep))
    prompts = [[5 + (i * 7 + j) % 90 for j in range(3 + i % 5)] for i in range(12)]
    g = sample(model, prompts, SamplingConfig(20, 1.0), list(range(60, 68)), 0, torch.Generator().manual_seed(3))
    P = 8                                                   # the longest prompt (7) padded to the multiple
    assert SHAPE_MULTIPLE == 8 and set(spans) == {16, 24, P + 20}           # slots 9…28: spans 16, 24, cap 28
    steps = max(len(c) for c in g.completion_ids) - 1
    assert len(spans) == 2 * steps                          # two layers a step
    # rows left in bulk: each drop removed at least a quarter of the batch
    sizes = [12, *rows]
    assert engine.DROP_FINISHED == 0.25 and rows and all(b - a >= b / 4 for b, a in zip(sizes, sizes[1:]))


def test_pad_left_rounds_the_width_up_to_a_multiple():
    from alignstack.data.collate import pad_left
    ids, att = pad_left([[7, 8, 9], [4]], pad_id=0, multiple=4)
    assert ids.tolist() == [[0, 7, 8, 9], [0, 0, 0, 4]] and att.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    ids, att = pad_left([[7, 8, 9, 1, 2], [4]], pad_id=0, multiple=4)
    assert ids.shape == (2, 8) and ids[0].tolist() == [0, 0, 0, 7, 8, 9, 1, 2] and att[1].sum() == 1
    assert pad_left([[7, 8, 9]], 0)[0].tolist() == [[7, 8, 9]]      # multiple 1: as wide as the longest


def test_world_v3_presets_differ_only_where_named():
    # tiny4's calibration variants change one dimension each: wide4 the width, deep8 the depth (docs/world.md)
    from alignstack.models.load import PRESETS, build_model
    from alignstack.models.tokenizer import train_tokenizer

    (h, layers, heads, inter) = PRESETS["tiny4"]
    assert PRESETS["deep8"] == (h, 2 * layers, heads, inter)
    assert PRESETS["wide4"] == (2 * h, layers, 2 * heads, 2 * inter)
    model = build_model("deep8", train_tokenizer(["hello world"] * 4), seed=0)
    assert model.config.num_hidden_layers == 8 and model.config.hidden_size == 128
    with pytest.raises(ValueError, match="unknown model preset 'deep9'"):
        build_model("deep9", train_tokenizer(["hello world"] * 4), seed=0)
