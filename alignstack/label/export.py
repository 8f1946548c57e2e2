"""Turning labels into training rows (the ``preference`` and ``ranking`` kinds of
``alignstack.data.formats``); every row is checked with ``validate_row`` before it is written.

Aggregation:

- ``all``: one row per live label (undone labels are never exported); ``annotator`` is the user
  name and ``meta`` holds ``task_id``, ``project``, ``label_id``, ``idempotency_key`` and the
  task's own meta.
- ``majority``: one row per labeled task.
  * pairwise: the response chosen by most annotators wins; a tie is broken by the earliest
    label. ``strength`` is the lower median (rounding toward "negligibly better") of the strengths
    given by the annotators who agree with the winner.
  * ranking: Borda count (a response at position p of K earns K-1-p points, summed over
    annotators), highest first; ties are broken by the order in the earliest label.
  * safety flags: a response is unsafe if any annotator marked it unsafe (conservative).
  * ``annotator`` is ``"majority"``; ``meta`` lists ``label_ids`` and ``annotators``.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from alignstack.data.formats import STRENGTHS, conversational, validate_row

from .db import Label, Project, Task, User

AGGREGATIONS = ("all", "majority")


def _meta(task: Task, project: Project, **extra) -> dict:
    meta = dict(task.meta)
    meta.update(task_id=task.id, project=project.name, **extra)
    return meta


def _pairwise_row(task: Task, project: Project, choice: int, strength: str, safe: list[bool],
                  annotator: str, meta: dict) -> dict:
    comps = task.completions
    return {"prompt": task.prompt, "chosen": comps[choice], "rejected": comps[1 - choice],
            "strength": strength, "chosen_safe": safe[choice], "rejected_safe": safe[1 - choice],
            "annotator": annotator, "meta": meta}


def _ranking_row(task: Task, ranking: list[int], safe: list[bool], annotator: str, meta: dict) -> dict:
    return {"prompt": task.prompt, "responses": task.completions, "ranking": ranking, "safe": safe,
            "annotator": annotator, "meta": meta}


def majority_pairwise(labels: list[Label]) -> tuple[int, str, list[bool]]:
    """(choice, strength, safe) for one task's labels, given in submission order."""
    votes = Counter(lab.choice for lab in labels)
    best = max(votes.values())
    choice = next(lab.choice for lab in labels if votes[lab.choice] == best)  # tie -> earliest label
    agreeing = sorted((STRENGTHS.index(lab.strength) for lab in labels if lab.choice == choice), reverse=True)
    strength = STRENGTHS[agreeing[(len(agreeing) - 1) // 2]]  # lower median: toward "negligibly"
    return choice, strength, _any_unsafe(labels)


def borda(rankings: list[list[int]]) -> list[int]:
    """Borda-count consensus of rankings (each best first); ties keep the first ranking's order."""
    k = len(rankings[0])
    points = [0] * k
    for r in rankings:
        for pos, idx in enumerate(r):
            points[idx] += k - 1 - pos
    first = {idx: pos for pos, idx in enumerate(rankings[0])}
    return sorted(range(k), key=lambda i: (-points[i], first[i]))


def _any_unsafe(labels: list[Label]) -> list[bool]:
    flags = [lab.safe for lab in labels]
    return [all(f[i] for f in flags) for i in range(len(flags[0]))]


def export_rows(s: Session, project: Project, aggregate: str = "all") -> Iterator[dict]:
    """Validated training rows for ``project``, in task order."""
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    names = dict(s.execute(select(User.id, User.name)).all())
    by_task: dict[int, list[Label]] = defaultdict(list)
    for lab in s.scalars(select(Label).where(Label.project_id == project.id, Label.undone_seq == 0)
                         .order_by(Label.created_at, Label.id)):
        by_task[lab.task_id].append(lab)
    kind = "preference" if project.kind == "pairwise" else "ranking"
    for task in s.scalars(select(Task).where(Task.project_id == project.id).order_by(Task.id)):
        labels = by_task.get(task.id)
        if not labels:
            continue
        if aggregate == "all":
            for lab in labels:
                meta = _meta(task, project, label_id=lab.id, idempotency_key=lab.idempotency_key)
                if project.kind == "pairwise":
                    row = _pairwise_row(task, project, lab.choice, lab.strength, lab.safe, names[lab.user_id], meta)
                else:
                    row = _ranking_row(task, lab.ranking, lab.safe, names[lab.user_id], meta)
                yield validate_row(kind, row)
            continue
        meta = _meta(task, project, label_ids=[lab.id for lab in labels],
                     annotators=[names[lab.user_id] for lab in labels])
        if project.kind == "pairwise":
            choice, strength, safe = majority_pairwise(labels)
            row = _pairwise_row(task, project, choice, strength, safe, "majority", meta)
        else:
            row = _ranking_row(task, borda([lab.ranking for lab in labels]), _any_unsafe(labels), "majority", meta)
        yield validate_row(kind, row)


def export_jsonl(s: Session, project: Project, aggregate: str = "all") -> Iterator[str]:
    for row in export_rows(s, project, aggregate):
        # pairs all-conversational (chosen/rejected as assistant messages): TRL's DPOTrainer loads them as they are
        yield json.dumps(conversational(row) if "chosen" in row else row, ensure_ascii=False) + "\n"
