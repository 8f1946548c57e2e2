"""Inter-annotator agreement: Krippendorff's alpha.

alpha = 1 - D_o / D_e, computed from the coincidence matrix (Krippendorff 2011, "Computing
Krippendorff's Alpha-Reliability"): it handles any number of annotators, missing labels (each task
is labeled by a varying subset) and different levels of measurement. Units with fewer than two
values carry no information about agreement and are dropped.

What the admin page reports:

- pairwise projects: **nominal** alpha on the choice (which response is better: 2 categories),
  and **ordinal** alpha on the strength-signed preference, an 8-point scale from "first response
  significantly better" (-4) through "negligibly better" (-1 / +1) to "second response
  significantly better" (+4);
- ranking projects: **ordinal** alpha where each (task, response) pair is a unit and its value is
  the rank position (1 = best) the annotator gave that response.

alpha = 1 is perfect agreement, 0 is chance level, negative is systematic disagreement; it is
undefined (None) when there are no pairable values or every value is identical.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from alignstack.data.formats import STRENGTHS

from .db import Label, Project

LEVELS = ("nominal", "ordinal", "interval")


def krippendorff_alpha(units: Mapping[Hashable, Sequence] | Sequence[Sequence],
                       level: str = "nominal") -> float | None:
    """Krippendorff's alpha for ``units``: each unit is the list of values its coders assigned
    (missing values simply absent, or None). Values must be sortable for ``ordinal`` and numbers
    for ``interval``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")
    groups = units.values() if isinstance(units, Mapping) else units
    pairable = [[v for v in g if v is not None] for g in groups]
    pairable = [g for g in pairable if len(g) >= 2]
    if not pairable:
        return None
    # coincidence matrix o[c][k]: each ordered pair of values within a unit, weighted 1/(m_u - 1)
    o: dict = defaultdict(float)
    for g in pairable:
        m = len(g)
        for i, c in enumerate(g):
            for j, k in enumerate(g):
                if i != j:
                    o[(c, k)] += 1.0 / (m - 1)
    values = sorted({v for g in pairable for v in g})
    n_c = {c: sum(o[(c, k)] for k in values) for c in values}
    n = sum(n_c.values())

    def delta2(c, k) -> float:
        if level == "nominal":
            return 0.0 if c == k else 1.0
        if level == "interval":
            return float(c - k) ** 2
        lo, hi = sorted((values.index(c), values.index(k)))
        between = sum(n_c[values[g]] for g in range(lo, hi + 1))
        return (between - (n_c[c] + n_c[k]) / 2.0) ** 2

    observed = sum(o[(c, k)] * delta2(c, k) for c in values for k in values)
    expected = sum(n_c[c] * n_c[k] * delta2(c, k) for c in values for k in values)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def signed_strength(choice: int, strength: str) -> int:
    """-4..-1 when the first response wins (-4 = significantly better), +1..+4 when the second does."""
    magnitude = len(STRENGTHS) - STRENGTHS.index(strength)
    return magnitude if choice == 1 else -magnitude


def project_agreement(s: Session, project: Project) -> dict[str, float | None]:
    """The alphas shown on the admin page for ``project`` (live labels only)."""
    labels = s.scalars(select(Label).where(Label.project_id == project.id, Label.undone_seq == 0)
                       .order_by(Label.id)).all()
    if project.kind == "pairwise":
        choice: dict = defaultdict(list)
        signed: dict = defaultdict(list)
        for lab in labels:
            choice[lab.task_id].append(lab.choice)
            signed[lab.task_id].append(signed_strength(lab.choice, lab.strength))
        return {"choice (nominal)": krippendorff_alpha(choice, "nominal"),
                "strength-signed preference (ordinal)": krippendorff_alpha(signed, "ordinal")}
    ranks: dict = defaultdict(list)
    for lab in labels:
        for position, idx in enumerate(json.loads(lab.ranking_json), start=1):
            ranks[(lab.task_id, idx)].append(position)
    return {"rank position (ordinal)": krippendorff_alpha(ranks, "ordinal")}
