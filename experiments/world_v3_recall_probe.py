"""Where does world v3's oracle best-of-64 stop? Fact recall versus extraction (issue 21; train and dev only)

    python experiments/world_v3_recall_probe.py --model pretrain=DIR --model sft=DIR [...] [--out JSON]

Lookups ask about creatures whose facts appear only in pretraining documents, so a model can fail them in two
ways: it never memorised the fact, or it memorised it but cannot bring it out as an answer in a chat. For each
model this measures both, on train and dev creatures (the sealed test split is never read):

- **fact recall** (plain text, no chat): completing the canonical fact sentence ("The urtel is" → " white."),
  does the model give the true attribute the highest log-probability among all values of that attribute?
  Chance is 1 / (number of values), about 0.1.
- **extraction** (chat): ``k`` samples at T = 1 for ``--prompts`` dev prompts of each of ``--families``
  (default lookups and word problems, the two families that cap best-of-64 on dev): oracle best-of-``k``
  helpfulness, mean helpfulness, for lookups the share of samples that name the asked creature, and for each
  prompt whose best sample is wrong its three most frequent answers (mode collapse on a wrong value shows up
  there).

Writes ``--out`` (default ``experiments/results/world_v3_attempts/recall_probe.json``).
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

SLOTS = ("color", "home", "food")


def recall_items(split: str, n: int) -> list[dict]:
    """Fact-completion items for the first ``n`` creatures of ``split`` (train or dev), every slot: the canonical
    fact sentence cut before its object, the continuation for every value of the slot, and the true value."""
    from alignstack.world.v3 import lexicon as L
    from alignstack.world.v3 import splits as S
    from alignstack.world.v3.tasks import LORE_VOCAB

    if split not in ("train", "dev"):
        raise ValueError(f"the recall probe reads train and dev only, not {split!r}")
    items = []
    for name in S.entities_of("creature", split)[:n]:
        c = L.CREATURE_BY_NAME[name]
        for slot in SLOTS:
            ans = getattr(c, slot)
            canon = L.fact_paraphrases("creature", c, slot)[0]
            at = canon.rindex(ans)                       # the object is the last occurrence of the value
            prefix = canon[:at].rstrip(" ")
            conts = {v: canon[len(prefix):at] + v + canon[at + len(ans):] for v in LORE_VOCAB[slot]}
            items.append({"entity": name, "slot": slot, "prefix": prefix, "continuations": conts, "answer": ans})
    return items


def recall_accuracy(model, tok, items: list[dict]) -> dict:
    """Share of items whose true value has the highest summed log-probability, per slot (the continuation's tokens
    scored by models.logprobs, as every loss here scores a response)."""
    import torch

    from alignstack.models.logprobs import forward_logprobs, sequence_logprobs

    hits: dict[str, list[bool]] = {s: [] for s in SLOTS}
    for it in items:
        pre = [tok.bos_token_id] + tok(it["prefix"], add_special_tokens=False)["input_ids"]
        vals = list(it["continuations"])
        full = [tok(it["prefix"] + it["continuations"][v], add_special_tokens=False)["input_ids"] for v in vals]
        if any(f[:len(pre) - 1] != pre[1:] for f in full):     # the sentence must split where the prefix ends
            raise ValueError(f"{it['entity']} {it['slot']}: the tokenizer merges across the end of {it['prefix']!r}")
        width = 1 + max(map(len, full))
        ids = torch.full((len(vals), width), tok.pad_token_id)
        attn, mask = torch.zeros_like(ids), torch.zeros_like(ids)
        for i, f in enumerate(full):
            ids[i, :1 + len(f)] = torch.tensor([tok.bos_token_id] + f)
            attn[i, :1 + len(f)] = 1
            mask[i, len(pre):1 + len(f)] = 1                  # the continuation's tokens only
        with torch.no_grad():
            scores = sequence_logprobs(forward_logprobs(model, ids, attn), mask).tolist()
        hits[it["slot"]].append(vals[max(range(len(vals)), key=scores.__getitem__)] == it["answer"])
    return {s: sum(h) / len(h) for s, h in hits.items() if h}


def summarise_samples(tasks, samples: list[list[str]]) -> dict:
    """Best-of-k and mean helpfulness over prompts, the share of samples naming the asked creature, and the most
    frequent answers of every prompt no sample gets right."""
    from alignstack.world.v3 import tasks as T

    best, mean, named, failing = [], [], [], []
    for t, resp in zip(tasks, samples):
        h = [T.helpfulness(t, x) for x in resp]
        best.append(max(h))
        mean.append(sum(h) / len(h))
        if t.family == "lookup":                     # its problem id is lookup:<creature>:<attribute>
            name = t.problem_id.split(":")[1]
            named.append(sum(name in x for x in resp) / len(resp))
        if max(h) < 1:
            failing.append({"prompt": t.turns[-1], "answer": t.answer,
                            "top": collections.Counter(resp).most_common(3)})
    n = len(tasks)
    return {"best_of_k": sum(best) / n, "mean_T1": sum(mean) / n,
            "names_creature": sum(named) / len(named) if named else None, "n_prompts": n, "failing": failing}


def main() -> None:
    import torch

    from alignstack.data.render import ChatRenderer
    from alignstack.models.load import load_model, load_tokenizer
    from alignstack.models.tokenizer import stop_token_ids
    from alignstack.rollout.engine import SamplingConfig, sample
    from alignstack.world.v3 import splits as S
    from alignstack.world.v3.files import fingerprint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="LABEL=DIR, repeatable")
    p.add_argument("--entities", type=int, default=40, help="creatures per split for the recall probe")
    p.add_argument("--prompts", type=int, default=60, help="dev prompts per family for the extraction probe")
    p.add_argument("--families", default="lookup,word", help="benign families for the extraction probe")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "world_v3_attempts" / "recall_probe.json"))
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    items = {s: recall_items(s, a.entities) for s in ("train", "dev")}
    fams = a.families.split(",")
    tasks = {f: S.prompt_set(0, "dev", a.prompts, {f: 1.0}) for f in fams}
    res = {"world_version": "3", "split_read": "train and dev only (never test)", "k": a.k,
           "world_fingerprint": fingerprint(), "models": {}}
    for spec in a.model:
        label, _, path = spec.partition("=")
        if not path or not Path(path).exists():
            raise SystemExit(f"--model {spec!r}: expected LABEL=DIR with an existing model folder")
        tok, model = load_tokenizer(path), load_model(path)
        model.eval()
        recall = {s: recall_accuracy(model, tok, it) for s, it in items.items()}
        r = ChatRenderer(tok)
        ext = {}
        for f, ts in tasks.items():
            ids = [r.prompt_ids(t.messages()) for t in ts]
            g = torch.Generator().manual_seed(0)
            out = sample(model, [x for x in ids for _ in range(a.k)], SamplingConfig(32, 1.0), stop_token_ids(tok),
                         tok.pad_token_id, g).texts(tok)
            ext[f] = summarise_samples(ts, [out[i * a.k:(i + 1) * a.k] for i in range(len(ts))])
        res["models"][label] = {"path": path, "fact_recall": recall, "dev_extraction": ext}
        print(f"{label}: recall train {recall['train']} dev {recall['dev']}; dev best-of-{a.k} "
              + ", ".join(f"{f} {e['best_of_k']:.3f} (T=1 {e['mean_T1']:.3f})" for f, e in ext.items()), flush=True)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(f"→ {a.out}")


if __name__ == "__main__":
    main()
