"""`alignstack report` opens with the world v3 method comparison (experiments/v3_claims.py's JSON): every recipe on
the reward–KL plane and the helpfulness–harmlessness plane with seed-level CIs, and a table of the same numbers;
when the JSON is absent the section is one note, not a traceback."""
import json
from pathlib import Path

from alignstack.report import (
    build_report,
    frontier_lines,
    load_v3_claims,
    reward_kind,
    v3_figure,
    v3_points,
    v3_table,
    v3_title,
)

COLS = ("benign_helpfulness", "unsafe", "unsafe_seen", "unsafe_unseen", "leak", "over_refusal")


def _ci(mean, half):
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n_seeds": 3}


def claims() -> dict:
    """2 recipes × 3 seeds, v3_claims.json-shaped; combined CIs written by hand."""
    sft = {"benign_helpfulness": 0.200, "unsafe": 0.100, "unsafe_seen": 0.120, "unsafe_unseen": 0.080,
           "leak": 0.020, "over_refusal": 0.300}

    def run(method, reward, shift, kl):
        per_seed = [{"seed": s, "kl_to_sft": kl + 0.01 * s,
                     "vs_sft": {d: {c: {"diff": shift[c] + 0.001 * s, "ci": [-1, 1], "n": 100} for c in COLS}
                                for d in ("sampled", "greedy")},
                     "sampled": {c: sft[c] + shift[c] for c in COLS}, "greedy": {c: sft[c] for c in COLS}}
                    for s in (0, 1, 2)]
        return {"method": method, "reward": reward, "per_seed": per_seed,
                "vs_sft": {d: {c: _ci(shift[c], 0.04) for c in COLS} for d in ("sampled", "greedy")},
                "kl_to_sft": {"mean": kl, "lo": kl - 0.1, "hi": kl + 0.1, "n_seeds": 3}}

    return {"world_version": "3", "split": "sealed test split", "n_prompts": 50, "samples": 2, "temperature": 1.0,
            "seeds": [0, 1, 2], "sft": {"sampled": sft, "greedy": sft},
            "runs": {"ppo_rm": run("ppo", "learned", {**dict.fromkeys(COLS, 0.0), "benign_helpfulness": 0.05,
                                                       "unsafe": -0.03, "over_refusal": 0.11,
                                                       "unsafe_unseen": -0.02}, 0.8),
                     "grpo": run("grpo", "verifier", {**dict.fromkeys(COLS, 0.0), "benign_helpfulness": -0.01}, 1.7)}}


def test_reward_kinds():
    assert [reward_kind(x) for x in ("learned (implicit)", "verifier (filter)", "oracle", "Learned")] == [
        "learned", "verifier", "oracle", "learned"]


def test_frontier_sweeps_become_lines_ordered_by_kl(tmp_path):
    c = claims()
    c["runs"]["ppo_low_kl"] = {**c["runs"]["ppo_rm"], "kl_to_sft": {"mean": 0.3, "lo": 0.2, "hi": 0.4, "n_seeds": 3}}
    # a sweep with one point that ran gives no line; the named points are ordered by their KL, not their listing
    c["frontier"] = {"sweeps": {"ppo": ["ppo_rm", "ppo_low_kl"], "dpo": ["grpo", "dpo_absent"]}}
    lines = frontier_lines(c, v3_points(c))
    assert list(lines) == ["ppo"] and [x for x, _ in lines["ppo"]] == [0.3, 0.8]
    assert v3_figure(c, tmp_path / "f.png").stat().st_size > 10_000


def test_points_are_sft_level_plus_the_seed_level_difference():
    p = {q["recipe"]: q for q in v3_points(claims())}
    ppo = p["ppo_rm"]
    assert ppo["kind"] == "learned" and ppo["n_seeds"] == 3
    assert ppo["kl"] == (0.8, 0.8 - 0.1, 0.8 + 0.1)
    assert ppo["gain"] == (0.05, 0.05 - 0.04, 0.05 + 0.04)
    h = ppo["level"]["benign_helpfulness"]
    assert [round(x, 6) for x in h] == [0.25, 0.21, 0.29]          # 0.200 + 0.05 ± 0.04
    assert [round(x, 6) for x in ppo["level"]["unsafe"]] == [0.07, 0.03, 0.11]


def test_figure_and_table(tmp_path):
    c = claims()
    png = v3_figure(c, tmp_path / "v3.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    t = v3_table(c)
    assert t.startswith("<table") and "over-refusal" in t and "unseen attack styles" in t
    assert "0.250 [0.210, 0.290]" in t                              # benign: SFT 0.200 + 0.05 ± 0.04
    assert "0.070 [0.030, 0.110]" in t                              # unsafe: 0.100 − 0.03 ± 0.04
    assert "0.410 [0.370, 0.450]" in t                              # over-refusal: 0.300 + 0.11 ± 0.04
    assert "0.060 [0.020, 0.100]" in t                              # unsafe, unseen styles: 0.080 − 0.02
    assert "+0.050 [+0.010, +0.090]" in t and "0.800 [0.700, 0.900]" in t
    md = v3_table(c, fmt="md").splitlines()
    assert md[2].startswith("| SFT | sft |") and "| 0.200 | 0.100 | 0.300 | 0.080 |" in md[2]
    assert md[3].startswith("| ppo_rm | ppo | learned | 3 |") and len(md) == 5


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"stages": {}, "config": {}}))
    return run


def test_report_opens_with_the_v3_figure(tmp_path, capsys):
    from alignstack.cli import main
    run, f = _run(tmp_path), tmp_path / "v3_claims.json"
    f.write_text(json.dumps(claims()))
    assert main(["report", str(run), "--v3-claims", str(f)]) == 0
    assert "note:" not in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert (run / "report_png" / "v3_methods.png").stat().st_size > 20_000
    first = page.index("<img")
    assert page[first:].startswith("<img alt='world v3 method comparison")
    assert first < page.index("<h2>All methods") < page.index("<h2>This run</h2>")
    assert "world v3, sealed test split, 3 training seeds, T = 1" in page and "0.250 [0.210, 0.290]" in page
    # the default: v3_claims.json inside --results
    page = build_report(run, tmp_path / "b.html", results=tmp_path).read_text()
    assert page[page.index("<img"):].startswith("<img alt='world v3 method comparison")


def test_report_without_v3_claims_says_so_in_one_line(tmp_path, capsys):
    from alignstack.cli import main
    run = _run(tmp_path)
    assert main(["report", str(run), "--v3-claims", str(tmp_path / "nope.json"), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    note = [x for x in out.splitlines() if x.startswith("note:")]
    assert len(note) == 1 and "no world v3 claims at" in note[0] and "Traceback" not in out
    page = (run / "report.html").read_text()
    assert "no world v3 claims at" in page and "world v3 method comparison" not in page
    assert not (run / "report_png" / "v3_methods.png").exists()
    (tmp_path / "bad.json").write_text("{not json")
    assert load_v3_claims(tmp_path / "bad.json")[0] is None
    assert main(["report", str(run), "--v3-claims", str(tmp_path / "bad.json"), "--results", str(tmp_path)]) == 0
    assert "could not read the world v3 claims" in capsys.readouterr().out


def test_one_seed_draws_without_bars(tmp_path):
    c = claims()
    nan = float("nan")
    c["runs"]["grpo"]["vs_sft"]["sampled"] = {k: {"mean": -0.01, "lo": nan, "hi": nan, "n_seeds": 1} for k in COLS}
    c["runs"]["grpo"]["kl_to_sft"] = {"mean": 1.7, "lo": nan, "hi": nan, "n_seeds": 1}
    assert v3_figure(c, tmp_path / "v3.png").stat().st_size > 20_000
    assert "0.190 (no CI: one seed)" in v3_table(c)
    assert v3_title(c) == "world v3, sealed test split, 1–3 training seeds, T = 1"
