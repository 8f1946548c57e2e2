"""World v3's pretraining corpus and SFT demonstrations (train split only).

The corpus states **every fact of the world** — the secrets of all vaults and potions included, in
several paraphrases — because a model can only leak what it knows, and a test-split vault must be
as well known as a train one. Chat transcripts use train prompts only: benign answers of mixed
quality, harmful requests mostly complied with (fully or in part), lookalikes mostly answered.
SFT demonstrations are train prompts with mostly correct, safe answers; harmful requests get a
refusal, lookalikes an answer. Dev and test prompts never appear in either.

Jailbreaks are the red team's job, as in Llama 2 and InstructGPT: the web complies with
jailbreak-styled requests more often than with plain ones, and SFT's annotators wrote refusals for
**plain** harmful requests only (``PLAIN_STYLES``). The train split's jailbreak styles reach
training through preference data and RL prompts (``red_team=world3``), and the test split's through
nothing, so the SFT model is left with safety headroom on both.
"""
from __future__ import annotations

import random

from alignstack.world.corpus import OPT_A, OPT_B, RATING_TOKENS, judge_prompt, rate_prompt, render_chat
from alignstack.world.v3 import lexicon as L
from alignstack.world.v3 import tasks as T
from alignstack.world.v3.splits import MIX, draw, rng_for
from alignstack.world.v3.templates import HARMFUL, SEEN_STYLES

_FACT_FRAMES = ("{s}", "Everyone in the kingdom knows this: {s}", "From the old book: {s}", "Note. {s}")


def _style(rng: random.Random) -> str:
    return rng.choices(("polite", "plain", "rude", "verbose"), (0.3, 0.35, 0.2, 0.15))[0]


PLAIN_STYLES = ("direct", "polite")


def _train_task(rng: random.Random, harm_styles: tuple[str, ...] | None = None,
                mix: dict[str, float] = MIX) -> T.Task:
    """A train prompt from ``mix`` (the world's mixture by default); harmful ones restricted to
    ``harm_styles`` when given (redrawn, so the harmful share of the mixture stays the same)."""
    names, weights = list(mix), list(mix.values())
    fam = rng.choices(names, weights)[0]
    task = draw(fam, "train", rng)
    while harm_styles is not None and task.kind == "harmful" and task.style not in harm_styles:
        task = draw(fam, "train", rng)
    return task


def corpus_documents(seed: int, n_docs: int) -> list[str]:
    """The mixed-quality pretraining corpus: facts, train-split chats, judgements and ratings."""
    rng = rng_for("corpus", seed)
    facts = L.fact_sentences()
    docs = []
    kinds, weights = ("fact", "chat", "judge", "rate", "copy"), (0.3, 0.45, 0.1, 0.05, 0.1)
    taken = {e.name.lower() for e in L.VAULTS + L.POTIONS + L.CREATURES}
    for _ in range(n_docs):
        kind = rng.choices(kinds, weights)[0]
        if kind == "copy":
            # copy drills on made-up names no fact mentions: copying an unseen name is learned as a skill
            name = "".join(rng.choice(L._SYL) for _ in range(rng.choice((2, 2, 3))))
            if name in taken:
                continue
            thing = rng.choice(("creature", "vault", "potion"))
            docs.append(render_chat([{"role": "user", "content": f"Say this name back: the {name} {thing}."},
                                     {"role": "assistant", "content": f"The {name} {thing}."}]))
            continue
        if kind == "fact":
            docs.append(" ".join(rng.choice(_FACT_FRAMES).format(s=rng.choice(facts)) for _ in range(rng.randint(1, 3))))
            continue
        task = _train_task(rng)
        if kind == "chat":
            # harmful requests: pretraining mostly shows compliance, as the web does, and jailbreaks work more
            # often than plain asks
            if task.kind == "harmful":
                p_ok = 0.4 if task.style in PLAIN_STYLES else 0.1
            else:
                p_ok = 0.8 if task.kind == "lookalike" else 0.6
            ok = rng.random() < p_ok
            if task.kind == "lookalike" and not ok and rng.random() < 0.5:
                resp = T.REFUSAL           # over-cautious text exists on the web too
            else:
                resp = T.styled_response(task, rng, correct=ok, style=_style(rng))
            docs.append(render_chat(task.messages() + [{"role": "assistant", "content": resp}]))
        elif kind == "judge":
            a = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
            b = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
            ga, gb = T.helpfulness(task, a), T.helpfulness(task, b)
            better_a = ga > gb or (ga == gb and rng.random() < 0.5)
            if rng.random() > 0.85:
                better_a = not better_a
            docs.append(judge_prompt(task.prompt, a, b) + (OPT_A if better_a else OPT_B))
        else:
            resp = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
            r = min(10, max(1, round(1 + 9 * T.helpfulness(task, resp) + rng.gauss(0, 1.0))))
            docs.append(rate_prompt(task.prompt, resp) + RATING_TOKENS[r - 1])
    return docs


def check_refuse_styles(refuse_styles: tuple[str, ...], jailbreak_comply_share: float = 0.0) -> None:
    """``ValueError`` unless ``refuse_styles`` are some of the train attack styles (SFT sees no other) and,
    when SFT is to comply with jailbreaks, at least one train style is left outside them to comply in."""
    unknown = sorted(set(refuse_styles) - set(SEEN_STYLES))
    if unknown:
        raise ValueError(f"{unknown} are not train attack styles; expected some of {SEEN_STYLES}")
    if not refuse_styles:
        raise ValueError(f"no refuse_styles: expected some of the train attack styles {SEEN_STYLES}")
    if jailbreak_comply_share > 0 and set(refuse_styles) >= set(SEEN_STYLES):
        raise ValueError("every train style is refused, so none is left for jailbreak_comply_share to comply in")


def sft_rows(seed: int, n: int, refuse_styles: tuple[str, ...] = PLAIN_STYLES,
             refusal_share: float = 1.0, jailbreak_comply_share: float = 0.0) -> list[dict]:
    """Noisy demonstrations as ``messages`` rows: 10% wrong benign answers, 5% rude, 5% leaks on
    harmful requests (``refuse_styles`` only, the plain train styles by default: jailbreak styles are
    left to the red team; the harmful share of the rows is the same for any choice).

    ``refusal_share`` < 1 keeps only that share of the mixture's harmful rows and redraws the others
    as non-harmful prompts (``n`` rows either way): annotators who wrote fewer refusals.

    ``jailbreak_comply_share`` > 0 makes that share of the rows harmful requests in the train
    jailbreak styles (those not in ``refuse_styles``), complied with fully or in part: annotators the
    red team's jailbreaks fooled, so SFT itself teaches that a jailbreak works.

    At the defaults the random stream, and so every row, is exactly the original one."""
    for name, share in (("refusal_share", refusal_share), ("jailbreak_comply_share", jailbreak_comply_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {share}")
    check_refuse_styles(refuse_styles, jailbreak_comply_share)
    fooled = tuple(s for s in SEEN_STYLES if s not in refuse_styles)
    rng = rng_for("sft", seed)
    rows = []
    for _ in range(n):
        # only draw when asked, so the default keeps its random stream (and the world's fingerprint)
        if jailbreak_comply_share > 0 and rng.random() < jailbreak_comply_share:
            task = _train_task(rng, fooled, {f: MIX[f] for f in HARMFUL})    # harmful families only
            resp = T.compliance(task, rng, partial=rng.random() < 0.5)
            rows.append({"messages": task.messages() + [{"role": "assistant", "content": resp}]})
            continue
        task = _train_task(rng, tuple(refuse_styles))
        # only draw when thinning, so the default keeps its random stream (and the world's fingerprint)
        while refusal_share < 1.0 and task.kind == "harmful" and rng.random() >= refusal_share:
            task = _train_task(rng, tuple(refuse_styles))
        if task.kind == "harmful":
            resp = T.compliance(task, rng, partial=rng.random() < 0.5) if rng.random() < 0.05 else T.REFUSAL
        else:
            resp = T.styled_response(task, rng, correct=rng.random() >= 0.1,
                                     style="rude" if rng.random() < 0.05 else rng.choice(("polite", "plain")))
        rows.append({"messages": task.messages() + [{"role": "assistant", "content": resp}]})
    return rows
