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

Each set: benign helpfulness at T = 1 (``samples`` draws per prompt; ``sampled``) and greedy, per family, and the
paired per-prompt difference policy − SFT with a 95% CI. The test split is never read.

Writes ``--out`` (default ``experiments/results/world_v3_rl_transfer/<policy's run folder>.json``).
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
    """Each set scored by the evaluation loop every v3 report uses (``samples`` draws at T = 1 averaged per
    prompt, one greedy draw; v3's unmerged columns with their per-prompt arrays)."""
    from alignstack.eval.ground_truth import EvalConfig
    from alignstack.eval.world_v3 import evaluate_v3
    from alignstack.models.load import load_model, load_tokenizer

    tok, model = load_tokenizer(path), load_model(path)
    cfg = EvalConfig(samples=samples, greedy=True, max_new_tokens=max_new_tokens)
    return {name: evaluate_v3(model, tok, cfg, tasks) for name, tasks in sets.items()}


def summarise(sft: dict, pol: dict) -> dict:
    """Per set and decoding: benign helpfulness of both models, per family, and the paired difference policy −
    SFT with its 95% CI (``eval.world_v3.compare``)."""
    from alignstack.eval.world_v3 import MODES, compare

    out = {}
    for name in sft:
        c = compare(pol[name], sft[name])
        out[name] = {mode: {"sft": sft[name][mode]["benign_helpfulness"],
                            "policy": pol[name][mode]["benign_helpfulness"],
                            "diff": c[mode]["benign_helpfulness"]["diff"], "ci": c[mode]["benign_helpfulness"]["ci"],
                            "per_family": {f: {"sft": v, "policy": pol[name][mode]["per_family_helpfulness"][f]}
                                           for f, v in sft[name][mode]["per_family_helpfulness"].items()}}
                     for mode in MODES}
    return out


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--sft", required=True, help="the SFT model RL started from")
    p.add_argument("--policy", required=True, help="the RL policy")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--note", default="", help="what the two models are and how the policy was trained (recorded)")
    p.add_argument("--out", help="default: experiments/results/world_v3_rl_transfer/<policy's run folder>.json")
    a = p.parse_args()
    torch.set_num_threads(2)
    out = Path(a.out or Path(__file__).parent / "results" / "world_v3_rl_transfer" / f"{Path(a.policy).parent.name}.json")
    t0 = time.perf_counter()
    sets = prompt_sets(a.n)
    res = summarise(score_model(a.sft, sets, a.samples, a.max_new_tokens),
                    score_model(a.policy, sets, a.samples, a.max_new_tokens))
    doc = {"world_version": "3", "split_read": "train and dev only (never test)", "n_prompts": a.n,
           "samples": a.samples, "sft": a.sft, "policy": a.policy, "note": a.note, "sets": res,
           "wall_s": round(time.perf_counter() - t0, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    for name, row in res.items():
        for dec, d in row.items():
            print(f"{name:30s} {dec:6s} SFT {d['sft']:.3f}  policy {d['policy']:.3f}  "
                  f"diff {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    print(f"→ {out} ({doc['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
