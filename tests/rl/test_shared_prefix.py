"""Shared-prefix log-prob passes (issue #24): a GRPO/RLOO group's K completions share one prompt, so the update
and reference passes run each distinct prompt once and expand its KV cache to the group's rows
(``models.logprobs.shared_prefix_logprobs``). The log-probs and the gradients must be those of the plain pass
(every row runs its own prompt) to float tolerance: the same dot products, summed in another order where the
backward adds the K rows' gradients into the one prompt pass. Also here: bf16 mixed precision on a CPU runs
attention eagerly (``models.load.attention_for_precision``)."""
import json

import pytest
import torch
from safetensors.torch import load_file
from test_completion_logits import V, assert_same_grads, assert_same_run, tiny  # tests/rl

from alignstack.models import logprobs
from alignstack.models.logprobs import forward_logprobs, prefix_groups, shared_prefix_logprobs
from alignstack.rollout.engine import Generation
from alignstack.rollout.experience import frozen_logprobs, policy_logprobs


def grouped_batch(order=(0, 0, 1, 0, 2, 1, 2, 1)):
    """Rows whose prompts (of 5, 3 and 9 tokens) repeat in ``order``, each with its own completion of 1–8
    tokens: right-padded, so completions start at different columns and end at different lengths."""
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, V, (n,), generator=g).tolist() for n in (5, 3, 9)]
    C = [4, 8, 1, 6, 3, 8, 5, 2][:len(order)]
    comps = [torch.randint(3, V, (c,), generator=g).tolist() for c in C]
    return Generation([prompts[i] for i in order], comps, [[-1.0] * c for c in C], [True] * len(C)).tensors(0), \
        prompts


def test_prefix_groups_by_hand():
    b, prompts = grouped_batch()
    p, inv, uniq = prefix_groups(b.input_ids, b.attention_mask, b.loss_mask)
    assert p.tolist() == [5, 5, 3, 5, 9, 3, 9, 3]
    assert inv.tolist() == [0, 0, 1, 0, 2, 1, 2, 1]
    assert uniq == prompts                                    # first-seen order
    # nothing shared: every prompt distinct
    d, _ = grouped_batch(order=(0, 1, 2))
    assert prefix_groups(d.input_ids, d.attention_mask, d.loss_mask) is None
    # not prompt ⊕ completion: a gap in a row's targets, or a target at column 0 (an empty prompt)
    gap = b.loss_mask.clone()
    gap[1, 6] = 0
    assert prefix_groups(b.input_ids, b.attention_mask, gap) is None
    first = b.loss_mask.clone()
    first[0, :5] = 1
    assert prefix_groups(b.input_ids, b.attention_mask, first) is None


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_shared_prefix_logprobs_and_gradients_equal_the_plain_pass(arch):
    b, _ = grouped_batch()
    m = tiny(arch).train()
    mask = b.mask.bool()
    seen = []
    m.register_forward_pre_hook(lambda mod, a, kw: seen.append(kw["input_ids"].shape[0]), with_kwargs=True)
    plain = forward_logprobs(m, b.input_ids, b.attention_mask, 0.7)
    shared = policy_logprobs(m, b, 0.7, share_prefix=True)
    assert seen == [8, 3, 8]                      # one plain pass; the 3 distinct prompts, then 8 completions
    torch.testing.assert_close(shared[mask], plain[mask], rtol=1e-5, atol=1e-5)
    assert torch.equal(shared[~mask], torch.zeros(int((~mask).sum())))
    assert_same_grads(m, plain, shared, b.mask, rtol=1e-4, atol=1e-5)
    # the reference pass in chunks that cut through the groups (rows 0–2, 3–5, 6–7): the same values
    with torch.no_grad():
        ref = frozen_logprobs(m, b, 0.7, chunk=3, share_prefix=True)
    torch.testing.assert_close(ref[mask], plain.detach()[mask], rtol=1e-5, atol=1e-5)


def test_shared_prefix_under_lora_and_fallbacks():
    from peft import LoraConfig, get_peft_model

    b, _ = grouped_batch()
    torch.manual_seed(1)
    m = get_peft_model(tiny("llama"), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False)).train()
    mask = b.mask.bool()
    plain = policy_logprobs(m, b, 1.0)
    torch.testing.assert_close(policy_logprobs(m, b, 1.0, share_prefix=True)[mask], plain[mask], rtol=1e-5,
                               atol=1e-5)
    # every prompt distinct: the plain pass runs (shared_prefix_logprobs says None), output identical
    d, _ = grouped_batch(order=(0, 1, 2))
    assert shared_prefix_logprobs(m, d.input_ids, d.attention_mask, d.loss_mask) is None
    assert torch.equal(policy_logprobs(m, d, 1.0, share_prefix=True), policy_logprobs(m, d, 1.0))


def length_reward(prompts, completions, **meta):
    return [min(len(c), 20) / 20 for c in completions]


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_fixed_seed_run_with_shared_prefixes_equals_the_plain_run(nano, tmp_path, monkeypatch, algorithm):
    """A seeded GRPO (micro-batches of 5 rows, cutting through groups of 4) or RLOO run with shared prefixes ends
    where the same run without them does: the same logged metrics and weights to float tolerance."""
    from alignstack.config import load
    from alignstack.methods import grpo

    torch.set_num_threads(1)
    real, calls = logprobs.shared_prefix_logprobs, []

    def spy(model, *a, **kw):
        out = real(model, *a, **kw)
        calls.append((torch.is_grad_enabled(), out is not None))
        return out
    monkeypatch.setattr(logprobs, "shared_prefix_logprobs", spy)

    def train(out, share):
        cfg = load(grpo.GRPOConfig, overrides=[
            f"out={out}", f"model.path={nano['path']}", "optim.lr=1e-2", "log.progress=false", f"algorithm={algorithm}",
            "reward=import:test_shared_prefix:length_reward", "steps=2", "prompts_per_step=4", "num_generations=4",
            "max_new_tokens=8", "beta=0.04", "optim.micro_batch_size=5", f"share_prefix={share}"])
        grpo.train(cfg)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return rows, load_file(str(out / "model" / "model.safetensors"))

    rows_s, w_s = train(tmp_path / "shared", "true")
    assert (True, True) in calls and (False, True) in calls          # the update and the reference pass shared
    n = len(calls)
    rows_p, w_p = train(tmp_path / "plain", "false")
    assert len(calls) == n                                           # switched off: never called
    assert_same_run(rows_s, w_s, rows_p, w_p)


def test_bf16_on_cpu_runs_attention_eagerly(tmp_path, monkeypatch):
    from alignstack.config import DistConfig, OptimConfig
    from alignstack.models.load import attention_for_precision
    from alignstack.train.loop import Trainer

    m = tiny("llama")
    assert m.config._attn_implementation == "sdpa"
    attention_for_precision(m, "no", "cpu")
    attention_for_precision(m, "bf16", "cuda")
    assert m.config._attn_implementation == "sdpa"                   # fp32, or a GPU: left alone
    monkeypatch.setenv("ALIGNSTACK_CPU_BF16_ATTENTION", "sdpa")
    attention_for_precision(m, "bf16", "cpu")
    assert m.config._attn_implementation == "sdpa"                   # asked to keep SDPA (long sequences)
    monkeypatch.delenv("ALIGNSTACK_CPU_BF16_ATTENTION")
    Trainer(m, None, OptimConfig(), 1, tmp_path, dist=DistConfig(mixed_precision="bf16"))
    assert m.config._attn_implementation == "eager"
    m.save_pretrained(tmp_path / "saved")                            # a run-time choice, not saved
    assert "attn" not in (tmp_path / "saved" / "config.json").read_text()
    from peft import LoraConfig, get_peft_model
    lm = get_peft_model(tiny("qwen2"), LoraConfig(r=2, target_modules=["q_proj"]))
    attention_for_precision(lm, "bf16", "cpu")                       # the model inside a peft wrapper
    assert lm.get_base_model().config._attn_implementation == "eager"


@pytest.mark.parametrize("arch", ["llama", "llama-tied", "qwen2", "gpt2"])
def test_a_bf16_reference_stores_rounded_linear_weights_with_the_same_logprobs(arch):
    """``prepare_reference`` under bf16 stores the reference's linear weights rounded to bf16, as autocast rounds
    them at every pass: its log-probs under autocast are the same bits, with fewer bytes. A weight tied to the
    input embeddings stays fp32 (the LM head of llama-tied; GPT-2's, whose other projections are not nn.Linear),
    and fp32 training leaves the reference alone."""
    from alignstack.models.load import attention_for_precision, frozen_copy, prepare_reference

    m = tiny(arch.split("-")[0])
    if arch == "llama-tied":
        m.lm_head.weight = m.model.embed_tokens.weight
    b, _ = grouped_batch()
    ref = frozen_copy(m)
    attention_for_precision(ref, "bf16", "cpu")                      # as prepare_reference sets it, before
    nbytes = lambda: sum(p.numel() * p.element_size() for p in ref.parameters())          # noqa: E731
    before_bytes = nbytes()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = frozen_logprobs(ref, b, 0.7, share_prefix=True)
    prepare_reference(ref, "no", "cpu")
    assert nbytes() == before_bytes and all(p.dtype == torch.float32 for p in ref.parameters())
    prepare_reference(ref, "bf16", "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        after = frozen_logprobs(ref, b, 0.7, share_prefix=True)
    assert torch.equal(after, before) and after.abs().sum() > 0
    head = ref.lm_head.weight
    assert head.dtype == (torch.bfloat16 if arch in ("llama", "qwen2") else torch.float32)
    if arch == "gpt2":
        assert nbytes() == before_bytes
    else:
        assert ref.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
        assert ref.model.embed_tokens.weight.dtype == torch.float32 and nbytes() < 0.6 * before_bytes
