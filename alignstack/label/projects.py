"""Projects: importing ``samples`` JSONL as tasks, and progress counts.

An import is all-or-nothing: every line is parsed and validated before a single task is written,
so a bad row 900 does not leave 899 half-imported tasks behind.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from alignstack.data.formats import MAX_RESPONSES, DataError, validate_row
from alignstack.http_limits import json_depth

from .db import Label, Project, Task, User

KINDS = ("pairwise", "ranking")
RANKING_MIN = 3
MAX_ROW_DEPTH = 32  # a samples row is 3 levels deep
MAX_LABELS_PER_TASK = 1000  # far above any real need; bounds the integer before it reaches the database
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # safe in URLs and file names


def parse_samples(lines: Iterable[str], kind: str, file: str) -> list[dict]:
    """Validated ``samples`` rows from JSONL text; raises DataError naming file, row and field.

    Rows are numbered by line (1-based); blank lines are allowed and skipped. Pairwise projects
    need exactly 2 completions per row, ranking projects 3..9, and every completion must be
    non-empty (an empty response cannot be exported as a preference or ranking row).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if json_depth(line.encode(), MAX_ROW_DEPTH) > MAX_ROW_DEPTH:  # json.loads would recurse until it crashed
            raise DataError(f"JSON nested deeper than {MAX_ROW_DEPTH} levels", file=file, row=n)
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"malformed JSON ({e.msg} at column {e.colno})", file=file, row=n) from None
        row = validate_row("samples", raw, file=file, row_number=n)
        k = len(row["completions"])
        if kind == "pairwise" and k != 2:
            raise DataError(f"a pairwise project needs exactly 2 completions per row, got {k}",
                            file=file, row=n, field="completions")
        if kind == "ranking" and not RANKING_MIN <= k <= MAX_RESPONSES:
            raise DataError(f"a ranking project needs {RANKING_MIN}..{MAX_RESPONSES} completions per row, "
                            f"got {k}", file=file, row=n, field="completions")
        for i, c in enumerate(row["completions"]):
            if not c.strip():
                raise DataError("empty completion (cannot be labeled or exported)",
                                file=file, row=n, field=f"completions[{i}]")
        rows.append(row)
    if not rows:
        raise DataError("no rows to import", file=file)
    return rows


def get_or_create_project(s: Session, name: str, kind: str, labels_per_task: int,
                          instructions: str | None = None) -> Project:
    """The project ``name``; created if new. An existing project keeps its kind (mixing is an error)."""
    if not PROJECT_NAME_RE.match(name):
        raise ValueError(f"project name must be 1..100 of [A-Za-z0-9_.-] starting with a letter or digit, got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(labels_per_task, bool) or not isinstance(labels_per_task, int) \
            or not 1 <= labels_per_task <= MAX_LABELS_PER_TASK:
        raise ValueError(f"labels per task must be an integer in 1..{MAX_LABELS_PER_TASK}, got {labels_per_task!r}")
    project = s.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name, kind=kind, labels_per_task=labels_per_task,
                          instructions=instructions or "", created_at=time.time())
        s.add(project)
        s.flush()
        return project
    if project.kind != kind:
        raise ValueError(f"project {name!r} is a {project.kind} project; cannot import {kind} tasks into it")
    project.labels_per_task = labels_per_task
    if instructions is not None:
        project.instructions = instructions
    return project


def import_rows(s: Session, project: Project, rows: list[dict]) -> int:
    now = time.time()
    s.add_all(Task(project_id=project.id, prompt_json=json.dumps(r["prompt"]),
                   completions_json=json.dumps(r["completions"]), meta_json=json.dumps(r.get("meta") or {}),
                   created_at=now) for r in rows)
    s.flush()
    return len(rows)


@dataclass
class Progress:
    tasks: int
    complete: int  # tasks with labels_per_task live labels
    labels: int  # live labels
    target: int  # tasks * labels_per_task
    mine: int = 0  # live labels by the asking user

    @property
    def percent(self) -> float:
        return 100.0 * self.labels / self.target if self.target else 100.0


def progress(s: Session, project: Project, user: User | None = None) -> Progress:
    n = project.labels_per_task
    tasks, labels, complete = s.execute(
        select(func.count(), func.coalesce(func.sum(case((Task.n_labels > n, n), else_=Task.n_labels)), 0),
               func.coalesce(func.sum(case((Task.n_labels >= n, 1), else_=0)), 0))
        .where(Task.project_id == project.id)).one()
    mine = 0
    if user is not None:
        mine = s.scalar(select(func.count()).select_from(Label).where(
            Label.project_id == project.id, Label.user_id == user.id, Label.undone_seq == 0)) or 0
    return Progress(tasks=tasks, complete=int(complete), labels=int(labels),
                    target=tasks * project.labels_per_task, mine=mine)
