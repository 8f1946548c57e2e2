"""Atomic checkpoints with exact resume.

A checkpoint is ``<out>/checkpoints/step-XXXXXXXX/`` holding the model (safetensors, a normal HF
folder), ``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (and, from a data-parallel run, ``rng_ranks.pt``: each
rank's generator states, restored on that rank), ``state.json`` (step, data position and method state) and the
resolved ``config.yaml``. It is written to a temporary folder and renamed,
and ``COMPLETE`` is its last file, so a kill during writing leaves the previous checkpoint the
latest loadable one. The last ``keep`` checkpoints are kept. Such a kill leaves its half-written
``checkpoints/.tmp-*`` folder behind (as large as a checkpoint); one writer owns a run folder, so
any temporary folder found when a run looks for its checkpoints (resume) or starts writing one is
stale and is removed then.

FSDP2-sharded runs (``dist.fsdp``) write the same layout: the trainer gathers full model and
optimizer state dicts to the main rank, which writes them (the optimizer's in the usual
``optimizer.state_dict()`` form); on resume the main rank reads them and they are broadcast and
re-sharded. So a checkpoint resumes under any number of processes, sharded or not.
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
TMP_PREFIX = ".tmp-"


def remove_stale_temps(out_dir: str | Path) -> int:
    """Delete ``<out_dir>/checkpoints/.tmp-*`` left by a run killed mid-write; returns how many."""
    import sys

    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        print(f"[alignstack] removed {len(stale)} unfinished checkpoint folder(s) in {root} "
              "left by an interrupted run", file=sys.stderr)
    return len(stale)


def rng_state() -> dict:
    """This process's generator states (torch CPU and CUDA, Python, NumPy)."""
    st = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():   # dropout and NEFTune noise on a GPU draw from its generators
        st["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
        st["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])
    if "numpy" in st:
        import numpy as np
        np.random.set_state(st["numpy"])


def save_checkpoint(root: str | Path, step: int, model, tokenizer, optimizer, scheduler, state: dict,
                    config_yaml: str, keep: int = 2, model_state: dict | None = None,
                    optim_state: dict | None = None, rng_states: list[dict] | None = None) -> Path:
    """``model_state``/``optim_state``: gathered full state dicts to write instead of the (sharded) live ones.
    ``rng_states``: every data-parallel rank's generator states (``rng_state()`` gathered), written beside the
    main process's own so each rank resumes its own random stream (dropout, NEFTune noise)."""
    remove_stale_temps(root)
    root = Path(root) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True,
                              **({"state_dict": model_state} if model_state is not None else {}))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        osd = _by_index(optim_state) if optim_state is not None else optimizer.state_dict()
        torch.save(osd, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        if rng_states is not None and len(rng_states) > 1:
            torch.save(rng_states, tmp / "rng_ranks.pt")
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
    """The newest complete checkpoint (the resume point); stale temporary folders are removed first."""
    remove_stale_temps(out_dir)
    cps = list_checkpoints(out_dir)
    return cps[-1] if cps else None


def _read_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: checkpoint has no safetensors weights")
    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    return sd


def _by_index(osd: dict) -> dict:
    """A name-keyed optimizer state dict (``torch.distributed.checkpoint``'s form) in the form of
    ``optimizer.state_dict()``: parameters numbered in param-group order."""
    idx = {name: i for i, name in enumerate(n for g in osd["param_groups"] for n in g["params"])}
    return {"state": {idx[n]: v for n, v in osd["state"].items()},
            "param_groups": [{**g, "params": [idx[n] for n in g["params"]]} for g in osd["param_groups"]]}


def _by_name(osd: dict, model, optimizer) -> dict:
    """The inverse of :func:`_by_index` for ``optimizer`` over ``model``'s parameters."""
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    return {"state": {order[i]: v for i, v in osd["state"].items()},
            "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in osd["param_groups"]]}


def _load_sharded(path: Path, model, optimizer) -> None:
    """FSDP2: the main rank reads the full state dicts; ``broadcast_from_rank0`` sends each tensor to the
    other ranks, which keep their shard. Collective: every rank calls it."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    sd, osd = {}, {}
    if dist.get_rank() == 0:
        sd = _read_weights(path)
        # tied weights are saved once (under the first name); a strict load wants every name
        first = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            first.setdefault(id(p), name)
            if name not in sd and first[id(p)] in sd:
                sd[name] = sd[first[id(p)]]
        osd = _by_name(torch.load(path / "optimizer.pt", weights_only=True), model, optimizer)
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, sd, options=opts)
    set_optimizer_state_dict(model, optimizer, osd, options=opts)


def load_checkpoint(path: Path, model, optimizer, scheduler, sharded: bool = False, rank: int = 0) -> dict:
    """Restore weights, optimizer, scheduler and RNG in place; return ``state.json``. ``sharded``: the
    model is FSDP2-sharded (collective load, see :func:`_load_sharded`). ``rank`` restores that data-parallel
    rank's own generator states where the checkpoint has them (one written by as many processes)."""
    if sharded:
        _load_sharded(path, model, optimizer)
    else:
        missing, unexpected = model.load_state_dict(_read_weights(path), strict=False)
        # tied embeddings are saved once; anything else missing is an error
        missing = [m for m in missing if "lm_head" not in m]
        if missing or unexpected:
            raise RuntimeError(f"{path}: checkpoint does not match the model (missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]})")
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    ranks = torch.load(path / "rng_ranks.pt", weights_only=False) if (path / "rng_ranks.pt").exists() else []
    _set_rng_state(ranks[rank] if rank < len(ranks) else torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
