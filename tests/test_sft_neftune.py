"""NEFTune in SFT (``neftune_noise_alpha``): the paper's scale by hand, the same draws as transformers' hook
(which TRL's ``SFTTrainer`` uses), noise in training mode only and gone after training, a clear error for a bad
α, and an exact resume with the noise on."""
import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignstack.algos.neftune import neftune_noise, neftune_scale
from alignstack.config import ConfigError, load
from alignstack.methods import sft
from alignstack.models.neftune import noisy_embeddings


def test_scale_by_hand_and_noise_bounds():
    assert neftune_scale(4, 16, 5.0) == pytest.approx(0.625)          # 5 / sqrt(64)
    assert neftune_scale(512, 4096, 5.0) == pytest.approx(5 / 1448.1546878700492)
    g = torch.Generator().manual_seed(0)
    noise = neftune_noise(torch.zeros(1000, 4, 16), 5.0, generator=g)
    assert noise.abs().max() <= 0.625
    assert noise.max() > 0.62 and noise.min() < -0.62                 # uniform over the whole band
    assert abs(float(noise.mean())) < 0.01
    # one sequence's noise has expected squared Frobenius norm alpha^2 / 3 (the paper's length-free scale)
    assert float((noise ** 2).sum(dim=(1, 2)).mean()) == pytest.approx(25 / 3, rel=0.03)


def test_same_draws_as_transformers_hook():
    from transformers.integrations.neftune import neftune_post_forward_hook

    x = torch.randn(2, 5, 8)
    emb = torch.nn.Embedding(3, 8)
    emb.neftune_noise_alpha = 5.0
    torch.manual_seed(1)
    theirs = neftune_post_forward_hook(emb.train(), None, x)
    torch.manual_seed(1)
    assert torch.equal(neftune_noise(x, 5.0), theirs)


def test_trl_names_the_setting_the_same():
    import trl

    assert "neftune_noise_alpha" in {f.name for f in dataclasses.fields(trl.SFTConfig)}
    assert "neftune_noise_alpha" in {f.name for f in dataclasses.fields(sft.SFTConfig)}


def test_noise_in_training_mode_only_and_removed_after(nano):
    model = nano["model"]
    ids = torch.tensor([[5, 6, 7, 8]])
    emb = model.get_input_embeddings()
    clean = emb(ids).detach()
    with noisy_embeddings(model, 5.0):
        model.train()
        noisy = emb(ids)
        assert not torch.equal(noisy, clean)
        assert (noisy - clean).abs().max() <= neftune_scale(4, clean.size(-1), 5.0) + 1e-6
        model.eval()
        assert torch.equal(emb(ids), clean)              # evaluation and sampling inside training stay clean
    model.train()
    assert torch.equal(emb(ids), clean) and not emb._forward_hooks   # the hook is gone with the block
    with noisy_embeddings(model, None):
        assert not emb._forward_hooks
    model.eval()


def _run(nano, out: Path, *extra):
    return sft.train(load(sft.SFTConfig, overrides=[f"out={out}", f"model.path={nano['path']}", "data.n_rows=200",
                                                    "optim.batch_size=8", "optim.max_steps=6",
                                                    "log.progress=false", *extra]))


def test_sft_with_noise_trains_another_model_and_records_alpha(nano, tmp_path):
    torch.set_num_threads(1)
    _run(nano, tmp_path / "plain")
    _run(nano, tmp_path / "noisy", "neftune_noise_alpha=5")
    a, b = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("plain", "noisy"))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert "neftune_noise_alpha: 5" in (tmp_path / "noisy" / "model" / "alignstack_config.yaml").read_text()


def test_noise_reaches_a_lora_model(nano, tmp_path):
    # LoRA trains adapters only; the hook must still find the (frozen) input embeddings under the PEFT wrapper
    torch.set_num_threads(1)
    lora = ["model.lora.enabled=true", "model.lora.dropout=0", "optim.lr=1e-2"]   # no dropout: only noise differs
    _run(nano, tmp_path / "plain", *lora)
    _run(nano, tmp_path / "again", *lora)
    _run(nano, tmp_path / "noisy", *lora, "neftune_noise_alpha=5")
    a, again, b = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("plain", "again", "noisy"))
    assert all(torch.equal(a[k], again[k]) for k in a)      # the adapters' init is seeded: a rerun repeats
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", ["0", "-1", "loud", "true"])
def test_bad_alpha_is_one_line(bad):
    with pytest.raises(ConfigError, match="neftune_noise_alpha") as e:
        load(sft.SFTConfig, overrides=[f"neftune_noise_alpha={bad}"])
    assert "\n" not in str(e.value)
