"""benchmarks/gpu.py keeps working: its CPU mode (tiny preset, fp32, a few steps) runs SFT, DPO and GRPO end
to end and writes the result file with the device name (ours only here; TRL is compared on real runs)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_cpu_tiny_mode_runs_and_writes_results(tmp_path):
    out = tmp_path / "gpu.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--cpu-tiny", "--skip-trl",
                          "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["device"].startswith("cpu") and r["gpu"] is False and r["cpu_tiny"] is True
    assert r["peak_tflops"] > 0 and "TRL skipped" in r["note"]
    tiny = r["runs"]["tiny"]
    assert tiny["params"] > 1e5
    for task in ("sft", "dpo", "grpo"):
        ours = tiny[task]["ours"]
        assert "error" not in ours, ours
        assert ours["tokens_per_s"] > 0 and 0 < ours["mfu"] < 1 and ours["peak_mem_mb"] > 0
        assert "skipped" in tiny[task]["trl"]
    assert tiny["grpo"]["ours"]["completions_per_s"] > 0
    assert 0 < tiny["grpo"]["ours"]["completion_length"] <= tiny["settings"]["max_new"]
    assert "tiny  grpo  ours" in res.stdout
