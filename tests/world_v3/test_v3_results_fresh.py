"""Committed world v3 results describe the world this code builds: each records world.v3.files.fingerprint, and a
calibration attempt that changes the world's data without re-running them turns this test red, instead of the
README quoting numbers from another world."""
import json
from pathlib import Path

import pytest

from alignstack.world.v3 import corpus as C
from alignstack.world.v3 import templates as TPL
from alignstack.world.v3.files import fingerprint

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
RERUN = {"v3_claims.json": "python experiments/v3_claims.py",
         "world_v3_headroom.json": "python experiments/world_v3_headroom.py (dev, then --split test --reuse)",
         "demo_v3.json": "alignstack demo --world 3, then copy its summary.json"}


@pytest.mark.parametrize("name", sorted(RERUN))
def test_committed_v3_results_match_the_world(name):
    recorded = json.loads((RESULTS / name).read_text()).get("world_fingerprint")
    assert recorded == fingerprint(), (f"experiments/results/{name} was run on another world v3 (fingerprint "
                                       f"{recorded}, this code {fingerprint()}): re-run it with {RERUN[name]}")


def test_fingerprint_sees_data_changes_not_reruns(monkeypatch):
    fp = fingerprint()
    assert fingerprint() == fp and len(fp) == 16
    # a train phrasing added (as calibration attempt 10 did) changes the world, though dev and test are untouched
    extra = TPL.Template("benign.arith.+-.solve", "arith", "train", ("Solve {x}.",), None, "+-")
    monkeypatch.setattr(TPL, "TEMPLATES", (*TPL.TEMPLATES, extra))
    assert fingerprint() != fp
    monkeypatch.undo()
    # so does a change to what the demonstrations show (here: which attack styles SFT's refusals cover)
    monkeypatch.setattr(C, "PLAIN_STYLES", ("direct",))
    assert fingerprint() != fp
