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
    """End of a launched run: wait for every process, tear the group down, then leave at once.

    A rank exiting while gloo threads still serve the group aborts with "terminate called without an
    active exception"; and even after ``destroy_process_group`` a gloo worker thread can still hold a
    finished work item whose tensors are freed during interpreter shutdown, which aborts (SIGABRT) after
    all the work is done and saved (seen rarely on CPU; pytorch/pytorch#179291). So a launched process
    flushes its output and ends with ``os._exit(0)`` instead of a normal interpreter shutdown. Single
    process: nothing to do, returns."""
    td = _group()
    if td is None:
        return
    import os
    import sys

    td.barrier()
    td.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
