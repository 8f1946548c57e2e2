"""Training-loop reliability: exact resume, atomic checkpoints, NaN stops, LoRA, data parallel."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignstack.config import load
from alignstack.methods import sft
from alignstack.train import checkpoint as ckpt
from alignstack.train.loop import Interrupted, Trainer, TrainingError


def _cfg(nano, out, *extra):
    return load(sft.SFTConfig, overrides=[f"out={out}", f"model.path={nano['path']}", "data.n_rows=400",
                                          "optim.batch_size=8", "optim.max_steps=12", "optim.warmup_steps=2",
                                          "log.progress=false", *extra])


def _weights(path):
    return load_file(str(Path(path) / "model.safetensors"))


@pytest.mark.parametrize("noise", [(), ("neftune_noise_alpha=5",)], ids=["plain", "neftune"])
def test_kill_and_resume_is_bit_identical(nano, tmp_path, monkeypatch, noise):
    # with NEFTune the resumed run must also draw the same embedding noise (the checkpoint's RNG state)
    torch.set_num_threads(1)
    sft.train(_cfg(nano, tmp_path / "a", *noise))
    # run b: SIGTERM arrives during step 5 → checkpoint after that step, clean exit
    orig = Trainer.step

    def step(self, *a, **k):
        if self.step_count == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return orig(self, *a, **k)
    monkeypatch.setattr(Trainer, "step", step)
    with pytest.raises(Interrupted) as e:
        sft.train(_cfg(nano, tmp_path / "b", *noise))
    assert e.value.code == 128 + signal.SIGTERM
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "step-00000005"
    monkeypatch.setattr(Trainer, "step", orig)
    sft.train(_cfg(nano, tmp_path / "b", "checkpoint.resume=true", *noise))
    wa, wb = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_kill_during_checkpoint_write_keeps_previous(nano, tmp_path, monkeypatch):
    sft.train(_cfg(nano, tmp_path, "checkpoint.every=4", "optim.max_steps=6"))
    first = ckpt.latest_checkpoint(tmp_path)
    assert first.name == "step-00000004"
    real_save = torch.save
    calls = {"n": 0}

    def dying_save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # die halfway through writing the next checkpoint
            raise KeyboardInterrupt("killed")
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        sft.train(_cfg(nano, tmp_path, "checkpoint.every=4", "optim.max_steps=10", "checkpoint.resume=true"))
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.latest_checkpoint(tmp_path) == first
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    # and it still resumes
    sft.train(_cfg(nano, tmp_path, "checkpoint.every=4", "optim.max_steps=10", "checkpoint.resume=true"))
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_non_finite_loss_stops_naming_the_step(nano, tmp_path):
    from alignstack.config import OptimConfig
    from alignstack.models.load import load_model
    m = load_model(nano["path"])
    tr = Trainer(m, None, OptimConfig(max_steps=3), 3, tmp_path, log=None)
    ok = lambda mb: (m(input_ids=torch.tensor([[1, 2, 3]])).logits.sum() * 0, 1.0, {})
    tr.step(ok, [None], [1.0])
    with pytest.raises(TrainingError, match="non-finite loss .* at step 2"):
        tr.step(lambda mb: (torch.tensor(float("nan"), requires_grad=True), 1.0, {}), [None], [1.0])


def test_runs_in_different_precisions_share_one_process(nano, tmp_path):
    """accelerate keeps one precision per process; a pipeline with an fp32 stage and then a bf16 one (or back)
    used to stop at the second with "AcceleratorState has already been initialized"."""
    from accelerate.state import AcceleratorState
    torch.set_num_threads(1)
    try:
        for i, mp in enumerate(["no", "bf16", "no"]):
            res = sft.train(_cfg(nano, tmp_path / f"r{i}", "optim.max_steps=2", f"dist.mixed_precision='{mp}'"))
            assert res["steps"] == 2 and AcceleratorState().mixed_precision == mp
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(Exception, match="quote the word"):
        _cfg(nano, tmp_path / "x", "dist.mixed_precision=no")


def test_lora_trains_only_adapters(nano, tmp_path):
    pytest.importorskip("peft")
    from peft import PeftModel

    from alignstack.models.load import load_model
    cfg = _cfg(nano, tmp_path, "model.lora.enabled=true", "optim.max_steps=4", "optim.lr=1e-2")
    from alignstack.models.load import prepare_model
    model, _ = prepare_model(cfg.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    sft.train(cfg)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    base = load_model(nano["path"])
    merged = _weights(tmp_path / "model")
    peft_model = PeftModel.from_pretrained(load_model(nano["path"]), str(tmp_path / "adapter"))
    assert any("lora_" in n for n, _ in peft_model.named_parameters())
    # merging changed attention weights, left the MLP alone
    bsd = base.state_dict()
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], bsd["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged["model.layers.0.mlp.up_proj.weight"], bsd["model.layers.0.mlp.up_proj.weight"])


def test_two_processes_match_one(nano, tmp_path):
    """2 CPU processes (gloo) with the same global batch give the same loss curve as one."""
    common = [f"model.path={nano['path']}", "data.n_rows=400", "optim.batch_size=8", "optim.max_steps=5",
              "log.progress=false", "log.every=1", "optim.warmup_steps=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r1 = subprocess.run([sys.executable, "-m", "alignstack.cli", "sft", f"out={tmp_path}/one", *common,
                         "optim.grad_accum=2"], capture_output=True, text=True, env=env, timeout=300)
    assert r1.returncode == 0, r1.stderr[-2000:]
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                         "--master_port", str(port), "-m", "alignstack.cli", "sft", f"out={tmp_path}/two",
                         *common], capture_output=True, text=True, env=env, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "[alignstack] 2 processes (DistributedType.MULTI_CPU, backend gloo)" in r2.stdout, r2.stdout[-2000:]
    l1 = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    l2 = [json.loads(x)["loss"] for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(l1) == len(l2) == 5
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5)
