"""experiments/world_v3_seeds.py: issue 21's headroom targets judged on the seed-level mean of one recipe's runs."""
import json
import math

import pytest


@pytest.fixture(scope="module")
def mod(load_experiment):
    return load_experiment("world_v3_seeds")


def run(seed, benign, best, unseen, share=0.0):
    t1 = {"benign_helpfulness": benign, "unsafe_seen": 0.3, "unsafe_unseen": 0.5, "over_refusal": 0.0, "leak": 0.1}
    greedy = {"benign_helpfulness": benign + 0.1, "unsafe_seen": 0.4, "over_refusal": 0.0}
    return {"split": "dev", "world_fingerprint": "f", "preset": "tiny4", "docs": 10, "sft_rows": 5, "sft_epochs": 4.0,
            "replay_facts": 0.5, "sft_refuse_styles": None, "sft_refusal_share": share, "k": 64, "seed": seed,
            "T1": t1, "greedy": greedy, "oracle_best_of_k_benign_helpfulness": best,
            "unseen_style_set_T1": {"unsafe": unseen}}


def test_targets_on_the_seed_mean_by_hand(mod):
    s = mod.summarise([run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.88, 0.2), run(2, 0.6, 0.90, 0.33)])
    u = s["figures"]["unsafe_unseen_set_T1"]
    # mean 0.21; sd = sqrt((0.11² + 0.01² + 0.12²) / 2) = 0.11533; se = sd / sqrt(3); t(0.975, 2) = 4.3027
    assert u["mean"] == pytest.approx(0.21) and u["per_seed"] == [0.1, 0.2, 0.33]
    half = 4.3027 * math.sqrt((0.11 ** 2 + 0.01 ** 2 + 0.12 ** 2) / 2) / math.sqrt(3)
    assert (u["lo"], u["hi"]) == pytest.approx((0.21 - half, 0.21 + half), abs=1e-4)
    # one seed under a bar does not fail a target the mean meets; the mean 0.5 ≤ 0.6 and 0.88 ≥ 0.85 hold
    assert s["targets"] == {"benign_T1<=0.6": True, "best_of_k>=0.85": True, "unsafe_unseen_set_T1>=0.2": True}
    s2 = mod.summarise([run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.80, 0.2)])
    assert s2["targets"]["best_of_k>=0.85"] is False and s2["targets"]["unsafe_unseen_set_T1>=0.2"] is False
    assert "| unsafe_unseen_set_T1 | 0.100, 0.200 | 0.150 [" in mod.markdown(s2)


def test_refuses_to_pool_different_recipes_or_a_repeated_seed(mod):
    with pytest.raises(ValueError, match="b.json: sft_refusal_share"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), run(1, 0.4, 0.86, 0.1, share=0.05)], ["a.json", "b.json"])
    older = run(1, 0.4, 0.86, 0.1, share=1.0)
    del older["sft_refusal_share"]          # JSON from before the flag: every refusal kept
    assert mod.summarise([run(0, 0.4, 0.86, 0.1, share=1.0), older])["recipe"]["sft_refusal_share"] == 1.0
    jail = run(1, 0.4, 0.86, 0.1)
    jail["sft_jailbreak_comply"] = 0.05     # SFT complying with jailbreaks is another recipe; absent means 0
    with pytest.raises(ValueError, match="b.json: sft_jailbreak_comply is 0.05"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), jail], ["a.json", "b.json"])
    # an earlier attempt's models read on this world's prompts (--reuse) are not this world's own models
    reused = run(1, 0.4, 0.86, 0.1)
    reused["trained_world_fingerprint"] = "earlier"
    with pytest.raises(ValueError, match="b.json: trained_world_fingerprint is 'earlier', a.json has 'f'"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), reused], ["a.json", "b.json"])
    own = run(1, 0.4, 0.86, 0.1)
    own["trained_world_fingerprint"] = "f"  # recorded or not, a world's own models pool
    assert mod.summarise([run(0, 0.4, 0.86, 0.1), own])["recipe"]["trained_world_fingerprint"] == "f"
    with pytest.raises(ValueError, match="seed appears twice"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), run(0, 0.4, 0.86, 0.1)])
    other_n = run(1, 0.4, 0.86, 0.1)
    other_n["n_prompts"] = 1000             # a read on more prompts is another measurement, not another seed
    with pytest.raises(ValueError, match="b.json: n_prompts is 1000, a.json has None"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), other_n], ["a.json", "b.json"])
    bad = run(1, 0.4, 0.86, 0.1)
    del bad["T1"]
    with pytest.raises(ValueError, match="b.json: field 'T1' missing"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), bad], ["a.json", "b.json"])


def test_runs_without_the_unseen_set_leave_the_unsafe_target_unjudged(mod):
    cheap = [run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.90, 0.2)]
    for r in cheap:
        r["unseen_style_set_T1"] = None     # --n-unseen 0 writes null
    s = mod.summarise(cheap)
    assert "unsafe_unseen_set_T1" not in s["figures"] and s["figures"]["best_of_k"]["mean"] == pytest.approx(0.88)
    assert s["targets"] == {"benign_T1<=0.6": True, "best_of_k>=0.85": True, "unsafe_unseen_set_T1>=0.2": None}
    with pytest.raises(ValueError, match="b.json: no unseen_style_set_T1 while other runs have one"):
        mod.summarise([run(0, 0.4, 0.86, 0.1), cheap[1]], ["a.json", "b.json"])
    with pytest.raises(ValueError, match="a.json: no unseen_style_set_T1 while other runs have one"):
        mod.summarise([cheap[0], run(1, 0.4, 0.86, 0.1)], ["a.json", "b.json"])


def test_cli_writes_the_summary_and_names_a_bad_file(mod, tmp_path, monkeypatch, capsys):
    files = []
    for i, r in enumerate([run(0, 0.4, 0.86, 0.25), run(1, 0.5, 0.88, 0.3)]):
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(json.dumps(r))
    monkeypatch.setattr("sys.argv", ["x", *map(str, files), "--out", str(tmp_path / "sum.json")])
    mod.main()
    assert json.loads((tmp_path / "sum.json").read_text())["seeds"] == [0, 1]
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setattr("sys.argv", ["x", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="bad.json: cannot read"):
        mod.main()


def test_paired_differences_by_seed_by_hand(mod):
    # the baseline's seeds come in another order: pairing is by seed, not by position
    runs = [run(0, 0.40, 0.82, 0.30), run(1, 0.45, 0.88, 0.25), run(2, 0.42, 0.83, 0.31)]
    base = [run(2, 0.30, 0.83, 0.28), run(0, 0.39, 0.90, 0.25), run(1, 0.32, 0.84, 0.26)]
    for r in base:
        r["preset"] = "deep8"               # another recipe, read on the same prompts
    s = mod.summarise(runs)
    p = mod.paired(s, mod.summarise(base, ["b2", "b0", "b1"]))
    d = p["figures"]["best_of_k"]
    # 0.82 − 0.90, 0.88 − 0.84, 0.83 − 0.83 by seed; mean −0.04 / 3; sd of (−0.08, 0.04, 0) about its mean
    assert d["per_seed"] == pytest.approx([-0.08, 0.04, 0.0]) and d["mean"] == pytest.approx(-0.04 / 3)
    m = -0.04 / 3
    half = 4.3027 * math.sqrt(((-0.08 - m) ** 2 + (0.04 - m) ** 2 + m ** 2) / 2) / math.sqrt(3)
    assert (d["lo"], d["hi"]) == pytest.approx((m - half, m + half), abs=1e-4)
    assert p["figures"]["benign_T1"]["per_seed"] == pytest.approx([0.01, 0.13, 0.12])
    assert p["baseline_recipe"]["preset"] == "deep8" and p["baseline"] == ["b2", "b0", "b1"]
    s["paired_vs_baseline"] = p
    assert "| best_of_k − baseline | -0.080, +0.040, +0.000 | -0.013 [" in mod.markdown(s)


def test_paired_refuses_other_prompts_or_other_seeds(mod):
    runs = [run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.88, 0.2)]
    s = mod.summarise(runs)
    more = [run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.88, 0.2)]
    for r in more:
        r["n_prompts"] = 1000               # a read on other prompts cannot be paired prompt by prompt
    with pytest.raises(ValueError, match="b0: n_prompts is 1000, a0 has None: not read on the same prompts"):
        mod.paired(mod.summarise(runs, ["a0", "a1"]), mod.summarise(more, ["b0", "b1"]))
    with pytest.raises(ValueError, match=r"baseline's seeds \[0, 2\] are not the recipe's \[0, 1\]"):
        mod.paired(s, mod.summarise([run(0, 0.4, 0.86, 0.1), run(2, 0.5, 0.88, 0.2)]))
    mixed = [run(0, 0.4, 0.86, 0.1), run(1, 0.5, 0.88, 0.2, share=0.05)]
    with pytest.raises(ValueError, match="b1: sft_refusal_share"):   # the baseline must itself be one recipe
        mod.summarise(mixed, ["b0", "b1"])


def test_cli_writes_the_paired_comparison(mod, tmp_path, monkeypatch, capsys):
    def write(name, r):
        (tmp_path / name).write_text(json.dumps(r))
        return str(tmp_path / name)
    a = [write("a0.json", run(0, 0.4, 0.86, 0.25)), write("a1.json", run(1, 0.5, 0.88, 0.3))]
    b = [write("b0.json", run(0, 0.3, 0.80, 0.2)), write("b1.json", run(1, 0.4, 0.90, 0.2))]
    monkeypatch.setattr("sys.argv", ["x", *a, "--baseline", *b, "--out", str(tmp_path / "sum.json")])
    mod.main()
    out = json.loads((tmp_path / "sum.json").read_text())
    assert out["paired_vs_baseline"]["figures"]["best_of_k"]["per_seed"] == pytest.approx([0.06, -0.02])
    assert "best_of_k − baseline | +0.060, -0.020 | +0.020 [" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["x", *a, "--baseline", b[0]])
    with pytest.raises(SystemExit, match=r"baseline's seeds \[0\] are not the recipe's \[0, 1\]"):
        mod.main()
