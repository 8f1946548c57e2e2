"""Reward models: K-way batching, feedback loading errors, the scalar head, metrics, collection.
Fast tests on the random `nano` model (seconds)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from alignstack.config import ConfigError, load
from alignstack.data.formats import DataError
from alignstack.data.render import ChatRenderer
from alignstack.eval import rm_metrics as M
from alignstack.losses.preference import pairwise_loss
from alignstack.methods import reward_model as RM
from alignstack.models import heads

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("The answer is 7.", "Sure! It is red.", "Whatever. a b c.", "Sorry, I can't help with that.",
         "It is under cup 2.", "Here we go. d e f.", "Of course. 12.", "No. Go away.", "b a.")


def _ranking_rows(n: int, ks=(4, 5, 6, 9)) -> list[dict]:
    rows = []
    for i in range(n):
        k = ks[i % len(ks)]
        resp = [f"{WORDS[(i + j) % len(WORDS)]} {j}" for j in range(k)]
        order = list(range(k))[::-1] if i % 2 else list(range(k))
        rows.append({"prompt": f"What is {i} + 1?", "responses": resp, "ranking": order,
                     "safe": [j % 3 != 0 for j in range(k)]})
    return rows


@pytest.fixture(scope="module")
def rm_base(nano):
    return {"path": nano["path"], "tokenizer": nano["tokenizer"]}


def _cfg(tmp_path, **kw) -> RM.RewardModelConfig:
    over = [f"out={tmp_path / 'rm'}", "log.progress=false", "optim.batch_size=4", "optim.warmup_steps=1"]
    over += [f"{k}={v}" for k, v in kw.items()]
    return load(RM.RewardModelConfig, overrides=over)


class _Counter:
    """Counts sequences and calls through the sequence-classification forward."""

    def __init__(self, monkeypatch, cls):
        self.rows, self.calls = 0, 0
        orig = cls.forward

        def counting(mod, input_ids=None, *a, **k):
            self.rows += int(input_ids.shape[0])
            self.calls += 1
            return orig(mod, input_ids, *a, **k)

        monkeypatch.setattr(cls, "forward", counting)


def _fit(tmp_path, rm_base, rows, objective, margin="none", monkeypatch=None):
    cfg = _cfg(tmp_path, objective=objective, margin=margin, **{"model.path": str(rm_base["path"])})
    tok = rm_base["tokenizer"]
    ex = RM.build_examples(RM.target_rows(rows, "helpfulness"), objective, margin, ChatRenderer(tok, 96))
    model = heads.reward_model_from_causal_lm(rm_base["path"], tok)
    counter = _Counter(monkeypatch, type(model)) if monkeypatch is not None else None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tr, hist = RM.fit(model, tok, ex, cfg)
    return ex, tr, hist, counter, before


def test_kway_forwards_each_response_once(tmp_path, rm_base, monkeypatch):
    rows = _ranking_rows(8)
    n_resp = sum(len(r["responses"]) for r in rows)
    ex, tr, hist, counter, before = _fit(tmp_path, rm_base, rows, "ranking", monkeypatch=monkeypatch)
    assert len(ex) == 8 and tr.step_count == 2  # one prompt = one batch element (batch of 4 prompts)
    assert counter.rows == n_resp              # every response through the model exactly once
    assert counter.calls == tr.step_count       # one forward per microbatch holds all K of every prompt
    changed = [n for n, p in tr.unwrapped.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "score.weight" in changed and len(changed) == len(before)


def test_flat_pairs_forward_each_response_k_minus_1_times(tmp_path, rm_base, monkeypatch):
    rows = _ranking_rows(4, ks=(4,))
    ex, tr, hist, counter, _ = _fit(tmp_path, rm_base, rows, "pairwise", monkeypatch=monkeypatch)
    assert len(ex) == 4 * 6                     # C(4,2) pairs per prompt
    assert counter.rows == 2 * len(ex)          # each response forwarded K-1 = 3 times


def test_kway_loss_is_mean_over_all_pairs(rm_base):
    tok = rm_base["tokenizer"]
    model = heads.reward_model_from_causal_lm(rm_base["path"], tok)
    rows = _ranking_rows(3, ks=(4, 5, 3))
    ex = RM.build_examples(rows, "ranking", "none", ChatRenderer(tok, 96))
    with torch.no_grad():
        loss, weight, _ = RM.batch_loss(model, ex, tok.pad_token_id, "ranking")
    assert weight == 3
    want = 0.0
    for e in ex:  # score each response alone (no padding) and average −logσ over C(K,2) pairs
        with torch.no_grad():
            s = [float(heads.sequence_scores(model, torch.tensor([it.input_ids]),
                                             torch.ones(1, len(it.input_ids), dtype=torch.long)))
                 for it in e.items]
        pairs = [(i, j) for i in range(len(s)) for j in range(len(s)) if e.ranks[i] < e.ranks[j]]
        want += sum(float(pairwise_loss(torch.tensor(s[i]), torch.tensor(s[j]))) for i, j in pairs) / len(pairs)
    assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-5)


def _write(tmp_path, rows, name="fb.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


@pytest.mark.parametrize("bad,field,msg", [
    ({"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}, "ranking", r"duplicates: \[0\]"),
    ({"prompt": "q", "responses": ["a", "b", "c"], "ranking": [0, 1]}, "ranking", "K mismatch"),
    ({"responses": ["a", "b"], "ranking": [0, 1]}, "prompt", "missing required field"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "strength": "much_better"}, "strength",
     "unknown strength 'much_better'"),
])
def test_malformed_feedback_rows_name_file_row_field(tmp_path, bad, field, msg):
    good = {"prompt": "q", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}
    if "chosen" in bad:
        good = {"prompt": "q", "chosen": "a", "rejected": "b", "strength": "better"}
    path = _write(tmp_path, [good, bad])
    with pytest.raises(DataError, match=msg) as e:
        RM.load_rows(path)
    assert e.value.file == path and e.value.row == 2 and e.value.field == field
    assert f"{path}, row 2, field '{field}'" in str(e.value)


def test_margin_needs_strength_and_kway_has_no_margin(tmp_path, rm_base):
    tok = rm_base["tokenizer"]
    r = ChatRenderer(tok, 96)
    with pytest.raises(DataError, match="needs a 'strength' label"):
        RM.build_examples([{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}],
                          "pairwise", "small", r, "x.jsonl")
    with pytest.raises(DataError, match="ranking rows have none"):
        RM.build_examples(_ranking_rows(1), "pairwise", "large", r)
    ex = RM.build_examples([{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b",
                             "strength": "better"}], "pairwise", "large", r)
    assert ex[0].margin == 2.0
    with pytest.raises(ConfigError, match="has no margin"):
        RM.check_config(_cfg(tmp_path, objective="ranking", margin="small"))
    with pytest.raises(ConfigError, match="objective"):
        RM.check_config(_cfg(tmp_path, objective="listwise"))


def test_safety_targets_follow_llama2():
    pref = [{"chosen": "x", "rejected": "y", "chosen_safe": False, "rejected_safe": True},
            {"chosen": "x", "rejected": "y", "chosen_safe": True, "rejected_safe": False},
            {"chosen": "x", "rejected": "y", "chosen_safe": False, "rejected_safe": False}]
    assert len(RM.target_rows(pref, "safety")) == 2          # unsafe-chosen over safe-rejected: dropped
    rk = RM.target_rows([{"responses": list("abcd"), "ranking": [0, 1, 2, 3], "safe": [False, True, False, True]}],
                        "safety")
    assert rk[0]["ranking"] == [1, 3, 0, 2]                  # safe first, annotator order kept within
    rows = [{"is_safety": True}] * 9 + [{"is_safety": False}] * 50
    mix = RM.mix_for_target(rows, "safety", 0.1, 0)
    assert sum(r["is_safety"] for r in mix) == 9 and len(mix) == 10


def test_reward_model_checkpoint_is_plain_hf(tmp_path, rm_base):
    from transformers import AutoModelForSequenceClassification, LlamaForSequenceClassification

    from alignstack.models.load import save_pretrained_atomic

    tok = rm_base["tokenizer"]
    m = heads.reward_model_from_causal_lm(rm_base["path"], tok, seed=3)
    assert isinstance(m, LlamaForSequenceClassification) and m.config.num_labels == 1
    d = m.config.hidden_size
    assert m.score.weight.shape == (1, d)
    assert float(m.score.weight.detach().std()) == pytest.approx(1 / math.sqrt(d + 1), rel=0.35)
    save_pretrained_atomic(m, tok, tmp_path / "rm", {heads.CALIBRATION_FILE: json.dumps({"a": 2.0, "b": -1.0})})
    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "rm"))
    assert torch.equal(again.score.weight, m.score.weight)
    # the score is read at the last non-pad token: padding a row does not change its score
    sc = heads.RewardModelScorer(tmp_path / "rm", batch_size=8)
    prompts = [[{"role": "user", "content": "What is 2 + 2?"}]] * 3
    comps = ["4.", "The answer is 4, of course, as always.", "Sure! It is 4."]
    batched = sc.raw_scores(prompts, comps)
    alone = [sc.raw_scores([p], [c])[0] for p, c in zip(prompts, comps)]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert sc(prompts, comps) == pytest.approx([2 * s - 1 for s in batched], abs=1e-5)  # calibration a·s + b


def test_metrics_hand_computed():
    assert M.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert M.roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.5)
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # τ-b with a tie in y: concordant 2, discordant 0, ties in y 1 → 2 / sqrt(3·2)
    assert M.kendall_tau_b([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / math.sqrt(6))
    assert M.kendall_tau_b([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(1 / 3)
    acc = M.pair_accuracy([1, 2, 0, 5], [0, 1, 1, 5])
    assert acc["mean"] == pytest.approx((1 + 1 + 0 + 0.5) / 4) and acc["n"] == 4
    # clustering widens the interval when pairs within a prompt agree with each other
    vals = [1.0] * 10 + [0.0] * 10
    flat = M.clustered_mean_ci(vals)
    clus = M.clustered_mean_ci(vals, [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5)
    assert clus["hi"] - clus["lo"] > flat["hi"] - flat["lo"]
    by = M.accuracy_by_bucket([1, 0, 2], [0, 1, 1], ["a", "b", "a"], order=["a", "b"])
    assert by["a"]["mean"] == 1.0 and by["b"]["mean"] == 0.0
    gaps = M.gap_by_bucket([1, 0, 2], [0, 1, 1], ["a", "b", "a"], order=["a", "b"])
    assert gaps["a"]["mean"] == 1.0 and gaps["b"]["mean"] == -1.0 and gaps["a"]["n"] == 2
    assert M.mean_pair_loss([0.0], [0.0]) == pytest.approx(math.log(2))


def test_histogram_png(tmp_path):
    p = M.score_histogram({"none": [0.1, 0.2, 0.3], "large": [-3, 3, 3.1]}, tmp_path / "h.png")
    assert Path(p).stat().st_size > 1000


def test_collect_rows_validate_and_rebuild_tasks(nano):
    from alignstack.feedback.collect import CollectConfig, collect, rows_tasks
    from alignstack.world import tasks as T

    tok, model = nano["tokenizer"], nano["model"]
    cfg = CollectConfig(n_prompts=12, k=4, k_max=6, temperatures=[0.7, 1.3], max_new_tokens=8, safety_frac=0.5)
    rows = collect(model, tok, cfg)
    assert len(rows) == 12 and all(4 <= len(r["responses"]) <= 6 for r in rows)
    assert all(len(r["safe"]) == len(r["responses"]) and r["annotator"] == "sim-0" for r in rows)
    assert rows[0]["meta"]["temperatures"][:2] == [0.7, 1.3]
    tasks = rows_tasks(rows)
    assert [t.prompt for t in tasks] == [r["prompt"][-1]["content"] for r in rows]
    assert any(t.is_safety for t in tasks) and all(t.is_safety == r["is_safety"] for t, r in zip(tasks, rows))
    assert all(0.0 <= T.helpfulness(t, x) <= 1.0 for t, r in zip(tasks, rows) for x in r["responses"])
    pref = collect(model, tok, CollectConfig(n_prompts=10, k=4, mode="preference", max_new_tokens=8))
    assert len(pref) == 20
    assert {r["strength"] for r in pref} <= {"significantly_better", "better", "slightly_better", "negligibly_better"}
    assert all(isinstance(r["chosen_safe"], bool) and isinstance(r["rejected_safe"], bool) for r in pref)
    with pytest.raises(ValueError, match="k <= k_max <= 9"):
        CollectConfig(k=4, k_max=10)


def test_feedback_cli_writes_valid_rows(tmp_path, nano):
    from alignstack.data.sources import read_rows
    from alignstack.feedback.cli import main

    out = tmp_path / "fb.jsonl"
    rc = main(["collect", "--model", str(nano["path"]), "--out", str(out), "--mode", "preference",
               "--n-prompts", "6", "-k", "4", "--temperatures", "0.7", "1.3", "--max-new-tokens", "6"])
    assert rc == 0
    rows = read_rows(out, "preference")
    assert len(rows) == 12 and all(r["strength"] for r in rows)
    assert main(["bogus"]) == 2
    assert main(["collect", "--model", str(nano["path"]), "--out", str(out), "-k", "12"]) == 2


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("reward_model_*.yaml")), ids=lambda p: p.name)
def test_shipped_reward_model_configs_load(path):
    cfg = load(RM.RewardModelConfig, path)
    RM.check_config(cfg)
    assert cfg.out and cfg.model.path


def test_llama2_scorer_gates_on_calibrated_safety(tmp_path, rm_base):
    from alignstack.models.load import save_pretrained_atomic

    tok = rm_base["tokenizer"]
    for name, seed, cal in (("help", 1, {"a": 1.0, "b": 0.5, "kind": "demo_shift"}),
                            ("safe", 2, {"a": 3.0, "b": 0.0, "kind": "platt"})):
        m = heads.reward_model_from_causal_lm(rm_base["path"], tok, seed=seed)
        save_pretrained_atomic(m, tok, tmp_path / name, {heads.CALIBRATION_FILE: json.dumps(cal)})
    sc = heads.Llama2Scorer(tmp_path / "help", tmp_path / "safe")
    prompts = [[{"role": "user", "content": f"What is {i} + 1?"}] for i in range(6)]
    comps = [f"The answer is {i}." for i in range(6)]
    flags = [True, False, False, True, False, False]
    out = sc(prompts, comps, is_safety=flags)
    h, s = sc.help(prompts, comps), sc.safety(prompts, comps)
    cut = math.log(0.15 / 0.85)
    want = [s_ if f or s_ < cut else h_ for h_, s_, f in zip(h, s, flags)]
    assert out == pytest.approx(want, abs=1e-5)
    assert sc.last_used_safety == [f or s_ < cut for s_, f in zip(s, flags)]
    # the task seam hands each row's columns over as examples: their is_safety column gates the same way
    from alignstack.tasks import example_from_row
    examples = [example_from_row({"prompt": p[0]["content"], "is_safety": f}) for p, f in zip(prompts, flags)]
    assert sc(prompts, comps, examples=examples) == pytest.approx(want, abs=1e-5)
