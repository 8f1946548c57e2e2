"""accelerate's FSDP needs GPUs: on a CPU-only machine it silently runs each launched process as an
independent single-process job (all writing one run folder). The training loop refuses that with a
clear message instead (measured with accelerate 1.x on torch 2.13; FSDP2 itself works on CPU/gloo,
but not through accelerate)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_multiprocess import _port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fsdp_config_on_cpu_fails_clearly(nano, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "accelerate" / "fsdp.yaml").read_text())
    cfg.update(num_processes=2, use_cpu=True, mixed_precision="no")
    (tmp_path / "fsdp_cpu.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                        str(tmp_path / "fsdp_cpu.yaml"), "--main_process_port", str(_port()), "-m", "alignstack.cli",
                        "sft", f"model.path={nano['path']}", "data.n_rows=32", "optim.max_steps=1",
                        "optim.batch_size=8", f"out={tmp_path / 'run'}", "log.progress=false"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0
    assert "accelerate's FSDP/DeepSpeed need GPUs" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "run" / "model").exists()      # nothing half-written
