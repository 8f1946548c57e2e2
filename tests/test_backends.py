"""The generation backend interface: the HF backend, and the vLLM backend's conversion code
exercised against a stand-in `vllm` module (vLLM itself needs a GPU)."""
import sys
import types

import torch

from alignstack.data.render import ChatRenderer
from alignstack.rollout.engine import HFBackend, SamplingConfig, VLLMBackend


def test_hf_backend_generates_and_syncs(nano):
    tok = nano["tokenizer"]
    be = HFBackend(nano["model"], tok)
    p = [ChatRenderer(tok).prompt_ids([{"role": "user", "content": "Hi"}])] * 3
    g = be.generate(p, SamplingConfig(max_new_tokens=5), torch.Generator().manual_seed(0))
    assert len(g) == 3 and all(len(lp) == len(c) for lp, c in zip(g.logprobs, g.completion_ids))
    be.sync_weights(nano["model"])
    assert be.model is nano["model"]


def test_vllm_backend_maps_outputs(monkeypatch):
    calls = {}

    class LP:
        def __init__(self, v):
            self.logprob = v

    class LLM:
        def __init__(self, model, **kw):
            calls["init"] = (model, kw)

        def generate(self, prompts, params, use_tqdm):
            calls["params"] = params
            out = types.SimpleNamespace(token_ids=[5, 6, 2], logprobs=[{5: LP(-0.1)}, {6: LP(-0.2)}, {2: LP(-0.3)}])
            return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    be = VLLMBackend("/models/x", stop_ids=[2])
    g = be.generate([[1, 3], [1, 4, 4]], SamplingConfig(max_new_tokens=7, temperature=0.8, top_k=5),
                    torch.Generator().manual_seed(3))
    assert calls["params"] == {"temperature": 0.8, "top_p": 1.0, "top_k": 5, "max_tokens": 7, "stop_token_ids": [2],
                               "logprobs": 0, "seed": 3}
    assert g.completion_ids == [[5, 6, 2], [5, 6, 2]] and g.finished == [True, True]
    assert g.logprobs[0] == [-0.1, -0.2, -0.3]
    assert g.tensors(0).old_logprobs.shape == (2, 5)
