"""``alignstack world stats``: what each split holds and how much the splits overlap.

For world v3 it draws ``n`` prompts per split and reports families, attack styles, distinct
problem ids, template ids, entities and texts, plus the size of each split's template set, and the
overlaps between splits — which must be zero for problems, templates and test-only styles. World v2
has no problem or template ids, so its report counts distinct prompt texts and their overlaps
(harmful requests are shared by every v2 split, which is what v3 fixes).

Stats read the test split's ids (not to tune on; to prove hygiene), so this is one of the final
reports that open the seal.
"""
from __future__ import annotations

from collections import Counter
from itertools import combinations


def _v3(seed: int, n: int) -> dict:
    from alignstack.world.v3 import splits as S
    from alignstack.world.v3.tasks import entity_of
    from alignstack.world.v3.templates import STYLE_SPLIT, TEMPLATES
    per, ids = {}, {}
    for split in ("train", "dev", "test"):
        tasks = S.prompt_set(seed, split, n, sealed=split == "test")
        ids[split] = {"problems": {t.problem_id for t in tasks}, "templates": {t.template_id for t in tasks},
                      "entities": {entity_of(t.problem_id) for t in tasks if t.kind != "benign"},
                      "texts": {"\n".join(t.turns) for t in tasks},
                      "held-out styles": {t.style for t in tasks if t.style and STYLE_SPLIT[t.style] != "train"}}
        per[split] = {"prompts": len(tasks), "families": dict(sorted(Counter(t.family for t in tasks).items())),
                      "kinds": dict(sorted(Counter(t.kind for t in tasks).items())),
                      "attack_styles": dict(sorted(Counter(t.style for t in tasks if t.kind == "harmful").items())),
                      "distinct_problems": len(ids[split]["problems"]),
                      "distinct_templates": len(ids[split]["templates"]),
                      "templates_in_split": sum(t.split == split for t in TEMPLATES),
                      "distinct_entities": len(ids[split]["entities"]),
                      "distinct_texts": len(ids[split]["texts"])}
    overlaps = {f"{a}/{b}": {k: len(ids[a][k] & ids[b][k]) for k in ids[a]}
                for a, b in combinations(("train", "dev", "test"), 2)}
    return {"world_version": "3", "seed": seed, "splits": per, "overlaps": overlaps,
            "must_be_zero": ["problems", "templates", "entities", "texts", "held-out styles"]}


def _v2(seed: int, n: int) -> dict:
    from alignstack.world import corpus as C
    per, texts = {}, {}
    for split in C.SPLITS:
        tasks = C.prompt_set(seed, split, n)
        texts[split] = {"texts": {t.prompt for t in tasks},
                        "harmful texts": {t.prompt for t in tasks if t.is_safety}}
        per[split] = {"prompts": len(tasks), "families": dict(sorted(Counter(t.family for t in tasks).items())),
                      "attack_styles": dict(sorted(Counter("red_team" if t.red_team else "plain"
                                                           for t in tasks if t.is_safety).items())),
                      "distinct_texts": len(texts[split]["texts"])}
    overlaps = {f"{a}/{b}": {k: len(texts[a][k] & texts[b][k]) for k in texts[a]}
                for a, b in combinations(C.SPLITS, 2)}
    return {"world_version": C.WORLD_VERSION, "seed": seed, "splits": per, "overlaps": overlaps, "must_be_zero": []}


def world_stats(version: str = "2", seed: int = 0, n: int = 2000) -> dict:
    if str(version) == "3":
        return _v3(seed, n)
    if str(version) == "2":
        return _v2(seed, n)
    raise ValueError(f"unknown world version {version!r}; expected 2 or 3")


def format_stats(st: dict) -> str:
    lines = [f"world v{st['world_version']} (seed {st['seed']})"]
    for split, s in st["splits"].items():
        lines.append(f"\n[{split}] {s['prompts']} prompts")
        for k, v in s.items():
            if k != "prompts":
                lines.append(f"  {k}: {v}")
    lines.append("\noverlaps between splits" + (" (must be 0: " + ", ".join(st["must_be_zero"]) + ")"
                                                if st["must_be_zero"] else ""))
    for pair, ov in st["overlaps"].items():
        cells = ", ".join(f"{k} {v}" + (" !" if v and k in st["must_be_zero"] else "") for k, v in ov.items())
        lines.append(f"  {pair}: {cells}")
    return "\n".join(lines)
