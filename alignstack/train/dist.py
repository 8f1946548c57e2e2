"""Process-group helpers for code outside the training step (saving, stage boundaries).

Under ``torchrun``/``accelerate launch`` every process runs a method's whole ``train(cfg)``; a stage that
writes files (a model, a rows file) must be finished before another process reads them, and one folder
must have one writer. Both helpers are no-ops in a single process.
"""
from __future__ import annotations


def _group():
    import torch.distributed as td
    return td if td.is_available() and td.is_initialized() else None


def is_main_process() -> bool:
    """Global rank 0, or no process group at all."""
    td = _group()
    return td is None or td.get_rank() == 0


def barrier() -> None:
    """Wait until every process gets here (a stage's files are complete before any rank reads them)."""
    td = _group()
    if td is not None:
        td.barrier()


def finish() -> None:
    """End of a launched run: wait for every process, then tear the group down (a rank exiting while
    gloo threads still serve the group aborts with "terminate called without an active exception")."""
    td = _group()
    if td is not None:
        td.barrier()
        td.destroy_process_group()
