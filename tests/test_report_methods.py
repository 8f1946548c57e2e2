"""`alignstack report` opens with every method of the committed results on the reward–KL and the
helpfulness–harmlessness planes, with error bars from the JSON."""
import json
from pathlib import Path

from alignstack.report import RESULTS, V3_CLAIMS, build_report, method_points

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"stages": {}, "config": {}}))
    return run


def test_committed_results_give_points_with_cis_on_both_planes():
    assert RESULTS == ROOT / "experiments" / "results"
    pts = method_points(RESULTS)
    by = {(p["source"], p["method"]): p for p in pts}
    ppo = by[("rl.json", "ppo_rm")]
    committed = json.loads((RESULTS / "rl.json").read_text())["ppo_rm"]
    assert ppo["kl"] == committed["kl_to_sft"]
    assert ppo["score"] == (committed["score_diff_vs_sft"]["mean"], committed["score_diff_vs_sft"]["lo"],
                            committed["score_diff_vs_sft"]["hi"])
    assert by[("dpo.json", "dpo")]["kl_ci"] is not None                  # DPO's KL has a CI: an x error bar
    assert any(p["kl"] is not None for p in pts) and sum(p["unsafe"] is not None for p in pts) >= 10
    assert all(p["score"][1] <= p["score"][0] <= p["score"][2] for p in pts)


def test_report_writes_the_methods_plot_first(tmp_path):
    run = _run(tmp_path)
    page = build_report(run).read_text()
    assert (run / "report_png" / "methods.png").stat().st_size > 10_000
    # the first picture after the world v3 comparison (when its JSON is committed; tests/test_report_v3.py), above
    # everything about the run itself
    first = page.index("<img", page.index("<h2>All methods"))
    assert page[first:].startswith("<img alt='all methods: reward-KL and helpfulness-harmlessness'")
    assert page.count("<img", 0, first) == V3_CLAIMS.exists()
    assert first < page.index("<h2>This run</h2>")


def test_report_without_results_says_so(tmp_path):
    run = _run(tmp_path)
    page = build_report(run, results=tmp_path / "none").read_text()
    assert "No committed experiment results found" in page and "<img" not in page
    assert not (run / "report_png" / "methods.png").exists()


def test_points_from_a_synthetic_results_folder(tmp_path):
    (tmp_path / "rl.json").write_text(json.dumps({
        "sft": {"score": 0.5},
        "ppo": {"score_diff_vs_sft": {"mean": 0.1, "lo": 0.05, "hi": 0.15},
                "unsafe_diff_vs_sft": {"mean": -0.1, "lo": -0.2, "hi": 0.0}, "kl_to_sft": 0.4}}))
    (tmp_path / "dpo.json").write_text(json.dumps({"dpo": {
        "vs_sft": {"sampled": {"score": {"diff": 0.02, "ci": [-0.01, 0.05]}}}, "kl_to_sft": {"kl": 0.7, "kl_ci": [0.5, 0.9]}}}))
    pts = method_points(tmp_path)
    assert [(p["method"], p["score"], p["unsafe"], p["kl"], p["kl_ci"]) for p in pts] == [
        ("ppo", (0.1, 0.05, 0.15), (-0.1, -0.2, 0.0), 0.4, None),
        ("dpo", (0.02, -0.01, 0.05), None, 0.7, (0.5, 0.9))]
