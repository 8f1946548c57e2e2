"""Sharded training on CPU: `dist.fsdp=true` shards the model with torch FSDP2 (`fully_shard`) over gloo.

Processes are started with torchrun: with accelerate 1.x, `accelerate launch --cpu --num_processes 2`
starts ONE process (its simple launcher only fans out through mpirun). accelerate sets up gloo
processes only when told to use the CPU: `dist.cpu=true` (alignstack also does so by itself when launched
processes find no GPU).

accelerate's own FSDP needs GPUs: on a CPU-only machine it silently runs each launched process as an
independent single-process job, which the training loop refuses with a clear message (last test)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_multiprocess import _launch, _port, failure, torchrun

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SFT = ["data.n_rows=400", "optim.batch_size=8", "log.progress=false", "log.every=1"]


def _run(args: list[str], processes: int = 1, script: Path | None = None) -> subprocess.CompletedProcess:
    """``alignstack.cli`` (or ``script``) in one process, or in ``processes`` torchrun CPU processes."""
    target = [str(script)] if script else ["-m", "alignstack.cli", *args]
    if processes == 1:
        r = subprocess.run([sys.executable, *target], capture_output=True, text=True, env=ENV, timeout=300)
    else:
        r = torchrun([*target, *([] if script else ["dist.cpu=true"])], processes, ENV, 300)
    if r.returncode != 0:
        pytest.fail(failure(r), pytrace=False)
    return r


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict:
    return load_file(str(run / "model" / "model.safetensors"))


def test_fsdp_flag_parses_and_guards():
    from alignstack.config import ConfigError, load
    from alignstack.methods import reward_model, sft
    from alignstack.train.loop import TrainingError, fsdp_shard

    assert load(sft.SFTConfig, overrides=["dist.fsdp=true"]).dist.fsdp is True
    assert load(sft.SFTConfig).dist.fsdp is False
    with pytest.raises(ConfigError, match="dist.fsdp"):   # scores on the main rank alone after training
        reward_model.check_config(load(reward_model.RewardModelConfig, overrides=["model.path=x", "dist.fsdp=true"]))
    with pytest.raises(TrainingError, match="Hugging Face models"):   # e.g. PPO's policy+value pair
        fsdp_shard(torch.nn.Linear(2, 2), None, None)


@pytest.mark.slow
def test_fsdp_sft_matches_one_process_and_shards(nano, tmp_path):
    """2 sharded processes give the 1-process loss curve at the same global batch (FSDP2 averages gradients
    over ranks like DDP, so the loss scale is unchanged), each rank holds half the parameters, and the saved
    model is a plain HF checkpoint with the trained weights."""
    common = [f"model.path={nano['path']}", *SFT, "optim.max_steps=5", "optim.warmup_steps=1"]
    _run(["sft", f"out={tmp_path}/one", *common, "optim.grad_accum=2"])
    r = _run(["sft", f"out={tmp_path}/two", *common, "dist.fsdp=true"], processes=2)
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [m["step"] for m in two] == [1, 2, 3, 4, 5]
    for k in ("loss", "grad_norm"):
        assert [m[k] for m in two] == pytest.approx([m[k] for m in one], rel=1e-4, abs=1e-5), k
    # sharded: every rank reports holding about half of the parameter elements, together all of them
    held = {int(a): (int(n), int(m)) for a, n, m in
            re.findall(r"fsdp: rank (\d) holds (\d+) of (\d+) parameter elements", r.stdout)}
    assert sorted(held) == [0, 1], r.stdout[-2000:]
    total = held[0][1]
    assert sum(n for n, _ in held.values()) == total
    assert all(0.4 * total < n < 0.6 * total for n, _ in held.values()), held
    # the saved model: same tensors as the unsharded run's (tied head written once), trained, reloadable
    from alignstack.models.load import load_model
    w1, w2, w0 = _weights(tmp_path / "one"), _weights(tmp_path / "two"), load_file(str(nano["path"] / "model.safetensors"))
    assert w2.keys() == w1.keys()
    assert all(type(v) is torch.Tensor for v in w2.values())
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-5
    assert sum(not torch.equal(w0[k], w2[k]) for k in w0) == len(w0)
    m2, m1 = load_model(tmp_path / "two" / "model"), load_model(tmp_path / "one" / "model")
    sd = m2.state_dict()
    assert all(torch.equal(sd[k], w2[k]) for k in w2)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(m2(input_ids=ids).logits, m1(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pretrain", "dpo"])
def test_fsdp_pretrain_and_dpo_match_one_process(nano, tmp_path, method):
    args = {"pretrain": ["model.preset=nano", "data.n_rows=200", "optim.batch_size=8", "heldout_docs=8"],
            "dpo": [f"model.path={nano['path']}", "data.n_rows=16", "optim.batch_size=8", "world_max_new_tokens=8"]}
    common = [method, *args[method], "optim.max_steps=3", "log.progress=false", "log.every=1"]
    r1 = _run([*common, f"out={tmp_path}/one", "optim.grad_accum=2"])
    r2 = _run([*common, f"out={tmp_path}/two", "dist.fsdp=true"], processes=2)
    l1, l2 = [m["loss"] for m in _metrics(tmp_path / "one")], [m["loss"] for m in _metrics(tmp_path / "two")]
    assert len(l2) == 3 and l2 == pytest.approx(l1, rel=1e-4, abs=1e-5)
    assert (tmp_path / "two" / "model" / "model.safetensors").exists()
    if method == "pretrain":   # the held-out NLL is a collective forward on the sharded model
        nll = lambda out: float(re.search(r'"heldout_nll": ([0-9.]+)', out).group(1))
        assert nll(r2.stdout) == pytest.approx(nll(r1.stdout), rel=1e-5)


@pytest.mark.slow
def test_fsdp_checkpoint_resume(nano, tmp_path):
    """A run stopped at a checkpoint and resumed ends with the weights of an uninterrupted one. The schedule
    (warm-up over 3 steps, then constant) does not depend on max_steps, so a 3-step run's step-2 checkpoint
    is the one a 4-step run writes; the learning rate at steps 3-4 checks the restored scheduler."""
    common = [f"model.path={nano['path']}", *SFT, "optim.schedule=constant", "optim.warmup_steps=3",
              "checkpoint.every=2", "dist.fsdp=true"]
    _run(["sft", f"out={tmp_path}/a", *common, "optim.max_steps=4"], processes=2)
    _run(["sft", f"out={tmp_path}/b", *common, "optim.max_steps=3"], processes=2)
    cp = tmp_path / "b" / "checkpoints" / "step-00000002"
    osd = torch.load(cp / "optimizer.pt", weights_only=True)     # the unsharded optimizer.state_dict() layout
    assert osd["state"] and all(isinstance(k, int) for k in osd["state"])
    assert all(type(v["exp_avg"]) is torch.Tensor for v in osd["state"].values())
    shutil.copytree(cp, tmp_path / "c" / "checkpoints" / cp.name)  # for the 1-process resume below
    r = _run(["sft", f"out={tmp_path}/b", *common, "optim.max_steps=4", "checkpoint.resume=true"], processes=2)
    assert "resumed from" in r.stdout and "(step 2)" in r.stdout
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6    # bit-identical when measured
    ma, mb = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [m["lr"] for m in mb[-2:]] == [m["lr"] for m in ma[-2:]]
    # the checkpoint layout is the unsharded one: a single process resumes it (same global batch)
    _run(["sft", f"out={tmp_path}/c", *[c for c in common if c != "dist.fsdp=true"], "optim.max_steps=4",
          "optim.grad_accum=2", "checkpoint.resume=true"])
    wc = _weights(tmp_path / "c")
    assert max((wa[k] - wc[k]).abs().max().item() for k in wa) < 1e-5


@pytest.mark.slow
def test_data_parallel_resume_keeps_each_ranks_noise(nano, tmp_path):
    """Two data-parallel processes with NEFTune noise: each rank draws its own noise, and a resumed run must
    restore each rank's own generator (the checkpoint's ``rng_ranks.pt``), not the main process's for all."""
    common = [f"model.path={nano['path']}", *SFT, "optim.schedule=constant", "optim.warmup_steps=3",
              "checkpoint.every=2", "neftune_noise_alpha=5"]
    _run(["sft", f"out={tmp_path}/a", *common, "optim.max_steps=4"], processes=2)
    _run(["sft", f"out={tmp_path}/b", *common, "optim.max_steps=3"], processes=2)
    ranks = torch.load(tmp_path / "b" / "checkpoints" / "step-00000002" / "rng_ranks.pt", weights_only=False)
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])
    r = _run(["sft", f"out={tmp_path}/b", *common, "optim.max_steps=4", "checkpoint.resume=true"], processes=2)
    assert "(step 2)" in r.stdout
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


SAMPLE_SCRIPT = '''
import torch
from accelerate import Accelerator
from alignstack.config import DistConfig
from alignstack.models.load import load_model
from alignstack.rollout.engine import SamplingConfig, sample
from alignstack.train.loop import fsdp_shard

acc = Accelerator(cpu=True)
rank = acc.process_index
ref, model = load_model({path!r}), load_model({path!r})
fsdp_shard(model, acc, DistConfig(fsdp=True))
# rank 0 has two chunks of prompts, rank 1 one; a third of the vocabulary ends a row, so rows (and ranks)
# finish at different steps
prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]][: 3 if rank == 0 else 1]
cfg = SamplingConfig(12, greedy=True, batch_size=2)
stops = list(range(0, 400, 3))
a, b = sample(model, prompts, cfg, stops, 0), sample(ref, prompts, cfg, stops, 0)
assert a.completion_ids == b.completion_ids and a.finished == b.finished, (a, b)
print("rank", rank, "lengths", [len(c) for c in a.completion_ids], flush=True)
'''


@pytest.mark.slow
def test_fsdp_sampling_keeps_ranks_in_step(nano, tmp_path):
    """A sharded model's forward is collective: sampling keeps every rank stepping until all are done (no
    hang when ranks have different numbers of prompts or stop at different steps) and matches the
    unsharded model token for token (greedy)."""
    script = tmp_path / "sample_fsdp.py"
    script.write_text(SAMPLE_SCRIPT.format(path=str(nano["path"])))
    r = _run([], processes=2, script=script)
    lengths = dict(re.findall(r"rank (\d) lengths (\[.*\])", r.stdout))
    assert sorted(lengths) == ["0", "1"], r.stdout
    assert len(set(json.loads(lengths["0"]))) > 1, lengths     # rows of one rank did stop at different steps


@pytest.mark.slow
def test_fsdp_grpo_with_shared_prefixes_matches_data_parallel(nano, tmp_path):
    """GRPO sharded (FSDP2, shared-prefix passes: two collective forwards per pass, the same on every rank) ends
    where the same run does unsharded under data parallelism with plain passes: the same logged reward, loss and
    KL at every step. Micro-batches of 3 rows cut through the groups of 4."""
    common = ["grpo", f"model.path={nano['path']}", "steps=3", "prompts_per_step=4", "num_generations=4",
              "max_new_tokens=8", "beta=0.04", "optim.lr=1e-2", "optim.micro_batch_size=3", "log.progress=false",
              "log.every=1", "reward=import:test_rl_smoke:length_reward"]
    for run, extra in (("ddp", "share_prefix=false"), ("fsdp", "dist.fsdp=true")):
        r = _launch([*common, f"out={tmp_path}/{run}", extra], tmp_path)      # tests/rl on PYTHONPATH: the reward
        if r.returncode != 0:
            pytest.fail(failure(r), pytrace=False)
    rows = [[m for m in _metrics(tmp_path / run) if "reward" in m] for run in ("ddp", "fsdp")]
    assert len(rows[0]) == len(rows[1]) == 3
    for a, b in zip(*rows):
        for k in ("reward", "loss", "kl", "length"):
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-5), (k, a, b)


@pytest.mark.slow
def test_fsdp_config_on_cpu_fails_clearly(nano, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "accelerate" / "fsdp.yaml").read_text())
    cfg.update(num_processes=2, use_cpu=True, mixed_precision="no")
    (tmp_path / "fsdp_cpu.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                        str(tmp_path / "fsdp_cpu.yaml"), "--main_process_port", str(_port()), "-m", "alignstack.cli",
                        "sft", f"model.path={nano['path']}", "data.n_rows=32", "optim.max_steps=1",
                        "optim.batch_size=8", f"out={tmp_path / 'run'}", "log.progress=false"],
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode != 0
    assert "accelerate's FSDP/DeepSpeed need GPUs" in r.stderr, r.stderr[-2000:]
    assert "dist.fsdp=true" in r.stderr                     # points to the way that works on CPU
    assert not (tmp_path / "run" / "model").exists()      # nothing half-written
