"""Atomic checkpoints with exact resume.

A checkpoint is ``<out>/checkpoints/step-XXXXXXXX/`` holding the model (safetensors, a normal HF
folder), ``optimizer.pt``, ``scheduler.pt``, ``rng.pt``, ``state.json`` (step, data position and
method state) and the resolved ``config.yaml``. It is written to a temporary folder and renamed,
and ``COMPLETE`` is its last file, so a kill during writing leaves the previous checkpoint the
latest loadable one. The last ``keep`` checkpoints are kept.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

PREFIX = "step-"


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np
        st["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    if "numpy" in st:
        import numpy as np
        np.random.set_state(st["numpy"])


def save_checkpoint(root: str | Path, step: int, model, tokenizer, optimizer, scheduler, state: dict,
                    config_yaml: str, keep: int = 2) -> Path:
    root = Path(root) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}))
        (tmp / "config.yaml").write_text(config_yaml)
        (tmp / "COMPLETE").write_text("ok")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(root.parent)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    root = Path(out_dir) / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "COMPLETE").exists())


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    cps = list_checkpoints(out_dir)
    return cps[-1] if cps else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG in place; return ``state.json``."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: checkpoint has no safetensors weights")
    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # tied embeddings are saved once; anything else missing is an error
    missing = [m for m in missing if "lm_head" not in m]
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the model (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]})")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
