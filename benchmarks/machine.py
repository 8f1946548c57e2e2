"""What machine a benchmark ran on, kept in its JSON: the same code reads differently on another CPU (the GRPO
ratios moved between an Intel CPU with a ~455 GFLOP/s bf16 matmul peak on one core and an AMD EPYC with ~220)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), with its family and model numbers; else platform's guess."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in info.splitlines():
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def machine() -> dict:
    import torch
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__}
