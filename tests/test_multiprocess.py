"""Scale-out smoke tests: every training method under torchrun with 2 CPU processes (gloo data
parallel; `accelerate launch --cpu --num_processes 2` starts only one process with accelerate 1.x, so
every launch here asserts that two processes joined one group). Each run must finish, save a
loadable model, and change its weights."""
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

LENGTH_REWARD = "reward=import:test_rl_smoke:length_reward"    # variance even for a random model
# method -> overrides for a seconds-long run on the random nano model
SMOKE = {
    "pretrain": ["data.n_rows=200", "optim.batch_size=8", "optim.max_steps=3", "heldout_docs=8"],
    "sft": ["data.n_rows=200", "optim.batch_size=8", "optim.max_steps=3"],
    "dpo": ["data.n_rows=16", "optim.batch_size=8", "optim.max_steps=2", "world_max_new_tokens=8"],
    "reward_model": ["feedback.n_prompts=16", "feedback.eval_prompts=8", "feedback.max_new_tokens=8",
                     "optim.batch_size=8", "optim.max_steps=2", "n_demos=8", "histogram=false"],
    "ppo": ["steps=2", "batch_size=8", "minibatches=2", "max_new_tokens=8"],
    "grpo": ["steps=2", "prompts_per_step=4", "num_generations=4", "max_new_tokens=8", LENGTH_REWARD],
    "rest": ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "improve_steps=1", "optim.max_steps=2",
             "optim.batch_size=4"],
    "hir": ["n_prompts=8", "n_samples=2", "max_new_tokens=8", "rounds=1", "optim.max_steps=2", "optim.batch_size=4"],
    "rloo": ["algorithm=rloo", "steps=2", "prompts_per_step=4", "num_generations=4", "max_new_tokens=8",
             LENGTH_REWARD],
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_PROCESSES = "[alignstack] 2 processes (DistributedType.MULTI_CPU, backend gloo)"


# a launched process that died by a signal (a C++ abort in gloo or c10d: torchrun's summary says "Signal 6
# (SIGABRT) received", exit code -6) or on a gloo transport error failed below our code; Python errors in our
# code exit with a traceback or "error: ..." and a positive code, and are never retried
_NATIVE_CRASH = re.compile(r"Signal \d+ \(SIG\w+\) received|exitcode\s*:\s*-\d+|gloo/transport|"
                           r"Connection reset by peer|Connection closed by peer")


def torchrun(target: list[str], nproc: int, env: dict, timeout: int, cwd=None) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node N TARGET`` on a free port. A run whose processes
    crashed natively (rare on a loaded 2-core machine: one in several CI runs) is started once more on a fresh
    port, and the first crash's reason is printed; a second failure is returned as it is."""
    def once():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(_port()), *target]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    r = once()
    if r.returncode != 0 and _NATIVE_CRASH.search(r.stderr):
        print("torchrun: processes crashed natively; started once more. First crash:\n" + r.stderr[-3000:])
        r = once()
    return r


def failure(r: subprocess.CompletedProcess) -> str:
    """A failed launch's reason in full (an assertion's repr would truncate it): the C++ reason of a crash
    (gloo, c10d) and Python's last error lines sit between long logs, so they are shown apart."""
    why = [x for x in r.stderr.splitlines() if re.search(r"terminate|what\(\)|Error|error:|Signal|exitcode", x)]
    reasons = "\n".join(why[-30:])
    return (f"exit code {r.returncode}\n-- reasons --\n{reasons}\n-- stdout (end) --\n{r.stdout[-2000:]}\n"
            f"-- stderr (end) --\n{r.stderr[-6000:]}")


def _launch(args: list[str], tmp_path, nproc: int = 2):
    """``torchrun --nproc_per_node N -m alignstack.cli ARGS`` (CPU/gloo: no GPU here)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "rl"), os.environ.get("PYTHONPATH", "")])}
    r = torchrun(["-m", "alignstack.cli", *args], nproc, env, 600, tmp_path)
    if r.returncode == 0 and nproc == 2:
        assert TWO_PROCESSES in r.stdout, "the launch did not form a 2-process group:\n" + r.stdout[-2000:]
    return r


def _changed(a_dir: Path, b_dir: Path) -> float:
    a, b = load_file(str(a_dir / "model.safetensors")), load_file(str(b_dir / "model.safetensors"))
    common = [k for k in a if k in b and a[k].shape == b[k].shape]
    return sum(not torch.equal(a[k], b[k]) for k in common) / max(1, len(common))


@pytest.mark.slow
@pytest.mark.parametrize("method", list(SMOKE))
def test_method_runs_on_two_processes(nano, tmp_path, method):
    model = [] if method == "pretrain" else [f"model.path={nano['path']}"]
    if method == "pretrain":
        model = ["model.preset=nano"]
    r = _launch([method.replace("rloo", "grpo") if method == "rloo" else method, f"out={tmp_path}/run", *model,
                 *SMOKE[method], "log.progress=false"], tmp_path)
    if r.returncode != 0:
        pytest.fail(failure(r), pytrace=False)
    out = tmp_path / "run" / "model"
    assert (out / "model.safetensors").exists()
    if method != "pretrain":
        assert _changed(Path(nano["path"]), out) > 0.5, "training under 2 processes left the weights unchanged"
