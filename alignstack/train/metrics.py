"""Logging: console progress, a JSONL metrics file, optional TensorBoard and Weights & Biases (both
imported only when switched on; a missing package is a one-line error naming the extra)."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path


class MetricsLogger:
    def __init__(self, out_dir: str | Path, total_steps: int, desc: str, progress: bool = True,
                 tensorboard: bool = False, is_main: bool = True, resume_step: int = 0, wandb: bool = False):
        from alignstack.config import require_extra

        self.is_main = is_main
        self.path = Path(out_dir) / "metrics.jsonl"
        self.t0 = time.perf_counter()
        self.bar = None
        self.tb = None
        self.wb = None
        if not is_main:
            return
        if wandb:   # before the progress bar, so a missing package fails before anything is drawn
            wb = require_extra("wandb", "wandb", "log.wandb=true")
            self.wb = wb.init(project=os.environ.get("WANDB_PROJECT", "alignstack"), name=desc,
                              dir=str(Path(out_dir)), resume="allow" if resume_step else None)
        if tensorboard:
            require_extra("torch.utils.tensorboard", "tensorboard", "log.tensorboard=true", package="tensorboard")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total_steps, initial=resume_step, desc=desc, dynamic_ncols=True, mininterval=1.0)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(Path(out_dir) / "tb"))

    def log(self, step: int, stats: dict) -> None:
        if not self.is_main:
            return
        row = {"step": step, "time": round(time.perf_counter() - self.t0, 3)}
        row.update({k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                    for k, v in stats.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in stats.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        if self.wb is not None:
            self.wb.log({k: v for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                        step=step)
        if self.bar is not None:
            short = {k: f"{v:.4g}" for k, v in stats.items() if isinstance(v, float)}
            self.bar.set_postfix(short, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()
