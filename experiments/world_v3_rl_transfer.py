"""Does RL on world v3's train prompts transfer to new problems and new phrasings? (issue 21, read on dev only)

    python experiments/world_v3_rl_transfer.py --sft DIR --policy DIR [--n 400] [--samples 4]

The v3 claims found no method that raises benign helpfulness on the sealed test split, GRPO and RLOO on the
exact-answer verifier included, although the SFT model's best-of-64 leaves room. This separates where the
gain is lost. It scores an SFT model and an RL policy trained from it on three benign prompt sets of the same
family mixture (v3's ``MIX``, benign families only), ``n`` prompts each:

- **train × train**: train problems in train templates (what RL trained on; fresh draws, so mostly new
  prompt texts of known problems and phrasings);
- **dev problems × train templates**: problems no training prompt used, in phrasings training used;
- **dev × dev**: the dev split itself (new problems in new phrasings, as test's are).

Each set: benign helpfulness at T = 1 (``samples`` draws per prompt) and greedy, per family, and the paired
per-prompt difference policy − SFT with a 95% CI. The test split is never read.

Writes ``--out`` (default ``experiments/results/world_v3_rl_transfer.json``).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

SETS = ("train_x_train", "devproblems_x_traintemplates", "dev_x_dev")


def prompt_sets(n: int, seed: int = 0) -> dict:
    """The three benign prompt sets (deterministic in ``seed``)."""
    from alignstack.world.v3 import splits as S
    from alignstack.world.v3 import tasks as T
    from alignstack.world.v3.templates import BENIGN, templates_for

    names = list(BENIGN)
    weights = [S.MIX[f] for f in names]

    def cross(fam: str, rng: random.Random) -> T.Task:
        # a train template with a dev problem: draw problems until one belongs to dev
        tpl = rng.choice(templates_for(fam, "train"))
        for _ in range(10000):
            pid, params, answer = T.draw_problem(fam, tpl.slot, rng)
            if S.problem_split(pid) == "dev":
                return T.render(tpl, pid, params, answer, "dev", rng)
        raise RuntimeError(f"no dev problem of family {fam!r}")

    out = {}
    for name in SETS:
        rng = S.rng_for("rl_transfer", seed, name)
        fams = [rng.choices(names, weights)[0] for _ in range(n)]
        if name == "train_x_train":
            out[name] = [S.draw(f, "train", rng) for f in fams]
        elif name == "dev_x_dev":
            out[name] = [S.draw(f, "dev", rng) for f in fams]
        else:
            out[name] = [cross(f, rng) for f in fams]
    return out


def score_model(path: str, sets: dict, samples: int, max_new_tokens: int) -> dict:
    """Per set: per-prompt mean helpfulness at T = 1 and greedy helpfulness, in prompt order."""
    import torch

    from alignstack.data.render import ChatRenderer
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.models.tokenizer import stop_token_ids
    from alignstack.rollout.engine import SamplingConfig, sample
    from alignstack.world.v3 import tasks as T

    tok, model = load_tokenizer(path), load_model(path)
    r = ChatRenderer(tok)
    stop, pad = stop_token_ids(tok), tok.pad_token_id
    res = {}
    for name, tasks in sets.items():
        ids = [r.prompt_ids(t.messages()) for t in tasks]
        g = torch.Generator().manual_seed(0)
        greedy = sample(model, ids, SamplingConfig(max_new_tokens, greedy=True), stop, pad, g).texts(tok)
        drawn = sample(model, [x for x in ids for _ in range(samples)], SamplingConfig(max_new_tokens, 1.0), stop,
                       pad, g).texts(tok)
        res[name] = {"t1": [sum(T.helpfulness(t, x) for x in drawn[i * samples:(i + 1) * samples]) / samples
                            for i, t in enumerate(tasks)],
                     "greedy": [T.helpfulness(t, x) for t, x in zip(tasks, greedy)]}
    return res


def summarise(sets: dict, sft: dict, pol: dict) -> dict:
    from alignstack.eval.rm_metrics import clustered_mean_ci

    out = {}
    for name, tasks in sets.items():
        row = {}
        for dec in ("t1", "greedy"):
            a, b = sft[name][dec], pol[name][dec]
            diff = clustered_mean_ci([y - x for x, y in zip(a, b)])
            fams = sorted({t.family for t in tasks})
            row[dec] = {"sft": sum(a) / len(a), "policy": sum(b) / len(b),
                        "diff": diff["mean"], "ci": [diff["lo"], diff["hi"]],
                        "per_family": {f: {"sft": _mean(a, tasks, f), "policy": _mean(b, tasks, f)} for f in fams}}
        out[name] = row
    return out


def _mean(values: list, tasks: list, family: str) -> float:
    xs = [v for v, t in zip(values, tasks) if t.family == family]
    return sum(xs) / len(xs)


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True, help="the SFT model RL started from")
    p.add_argument("--policy", required=True, help="the RL policy")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--note", default="", help="what the two models are (recorded in the JSON)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "world_v3_rl_transfer.json"))
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    sets = prompt_sets(a.n)
    res = summarise(sets, score_model(a.sft, sets, a.samples, a.max_new_tokens),
                    score_model(a.policy, sets, a.samples, a.max_new_tokens))
    doc = {"world_version": "3", "split_read": "train and dev only (never test)", "n_prompts": a.n,
           "samples": a.samples, "sft": a.sft, "policy": a.policy, "note": a.note, "sets": res,
           "wall_s": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps(doc, indent=2))
    for name, row in res.items():
        for dec, d in row.items():
            print(f"{name:30s} {dec:6s} SFT {d['sft']:.3f}  policy {d['policy']:.3f}  "
                  f"diff {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    print(f"→ {a.out} ({doc['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
