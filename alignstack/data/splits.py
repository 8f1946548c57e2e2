"""Held-out splits for an eval loss: ``data.eval_path`` (a file of the same kind) or ``data.eval_frac``
(a seeded share of the training rows, never trained on)."""
from __future__ import annotations

import random
from collections.abc import Callable


def eval_split(rows: list, data_cfg, read: Callable[[str], list], seed: int = 0) -> tuple[list, list]:
    """``(train, eval)``: ``read(data.eval_path)`` when set, else a ``data.eval_frac`` share of ``rows``
    drawn with ``random.Random(f"eval-split|{seed}")`` (at least one row each side), else no eval rows."""
    path = getattr(data_cfg, "eval_path", None)
    frac = getattr(data_cfg, "eval_frac", 0.0) or 0.0
    if path:
        return rows, read(path)
    if not frac:
        return rows, []
    if not 0 < frac < 1:
        raise ValueError(f"data.eval_frac must be in (0, 1), got {frac}")
    if len(rows) < 2:
        raise ValueError(f"data.eval_frac needs at least 2 rows, got {len(rows)}")
    n_eval = min(max(1, round(len(rows) * frac)), len(rows) - 1)
    held = set(random.Random(f"eval-split|{seed}").sample(range(len(rows)), n_eval))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
