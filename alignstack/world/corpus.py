"""The world's data: pretraining corpus, SFT demonstrations and prompt splits.

Everything is a deterministic function of ``(seed, WORLD_VERSION)``: random draws come from
``random.Random`` instances seeded from strings (never from Python's salted ``hash``), and splits
are assigned by an md5 of the prompt text, so benign eval prompts never appear in training data.
Harmful requests come from a handful of templates and are shared by every split (the behaviour,
not the phrasing, is what is held out); red-team phrasings appear only in pretraining (mostly
followed by compliance) and in eval/red-team prompt sets, never in SFT demonstrations.
"""
from __future__ import annotations

import hashlib
import random
import re

from alignstack.world import tasks as T

WORLD_VERSION = "2"  # 2: family mixture identical across splits (v1 over-sampled harmful prompts in eval)

CHAT = {"user": "<|user|>", "assistant": "<|assistant|>", "system": "<|system|>", "end": "<|end|>"}
CRITIQUE, REVISE, JUDGE, OPT_A, OPT_B, RATE = ("<|critique|>", "<|revise|>", "<|judge|>", "<|A|>", "<|B|>",
                                                "<|rate|>")
RATING_TOKENS = tuple(f"<|r{i}|>" for i in range(1, 11))
GOAL_TOKENS = ("<correct>", "<wrong>")
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", CHAT["system"], CHAT["user"], CHAT["assistant"], CHAT["end"],
                  *GOAL_TOKENS, JUDGE, OPT_A, OPT_B, CRITIQUE, REVISE, RATE, *RATING_TOKENS,
                  *(f"<|reserved_{i}|>" for i in range(8)))

# benign families and their sampling weights for the general prompt distribution
MIX = {"add": 0.18, "reverse": 0.12, "sort": 0.14, "count": 0.08, "lookup": 0.12, "track": 0.08,
       "translate": 0.08, "vault": 0.1, "potion": 0.1}
SPLITS = ("train", "dev", "eval")


def rng_for(*parts) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, (WORLD_VERSION, *parts))).encode()).hexdigest())


def split_of(task: T.Task) -> str:
    """Stable split of a benign prompt by its text: 10% eval, 5% dev, 85% train."""
    if task.is_safety:
        return "any"
    b = int(hashlib.md5(f"{task.family}|{task.prompt}".encode()).hexdigest(), 16) % 20
    return "eval" if b < 2 else "dev" if b == 2 else "train"


def sample_task(rng: random.Random, split: str, families: dict | None = None, red_team_frac: float = 0.5) -> T.Task:
    """One prompt of ``split`` from the family mixture: the family is drawn by weight first, then a
    prompt of that family is redrawn until its text hashes into ``split`` (so the mixture is the
    same in every split; harmful requests are shared by all splits)."""
    fams = families or MIX
    names, weights = list(fams), list(fams.values())
    fam = rng.choices(names, weights)[0]
    for _ in range(1000):
        task = T.make_task(fam, rng, red_team=fam in T.HARMFUL and rng.random() < red_team_frac)
        if task.is_safety or split_of(task) == split:
            return task
    raise RuntimeError(f"could not draw a {split} prompt of family {fam!r}")


def prompt_set(seed: int, split: str, n: int, families: dict | None = None, red_team_frac: float = 0.5,
               goal: str | None = None) -> list[T.Task]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = rng_for("prompts", seed, split, sorted((families or MIX).items()), red_team_frac, goal)
    out = []
    for _ in range(n):
        t = sample_task(rng, split, families, red_team_frac)
        if goal is not None:
            t = T.Task(t.family, t.prompt, t.answer, t.is_safety, t.red_team, goal, t.info)
        out.append(t)
    return out


def render_chat(messages: list[dict]) -> str:
    """Chat transcript as raw text with the template's markers (the corpus form)."""
    return "".join(f"{CHAT[m['role']]}{m['content']}{CHAT['end']}" for m in messages)


def _style(rng: random.Random) -> str:
    return rng.choices(("polite", "plain", "rude", "verbose"), (0.3, 0.35, 0.2, 0.15))[0]


def _goal_prompt(task: T.Task, goal: str) -> str:
    return f"<{goal}> {task.prompt}"


def corpus_documents(seed: int, n_docs: int) -> list[str]:
    """The mixed-quality pretraining corpus (train-split prompts only)."""
    rng = rng_for("corpus", seed)
    docs = []
    kinds = ("chat", "fact", "critique", "judge", "rate", "goal")
    weights = (0.6, 0.08, 0.08, 0.1, 0.06, 0.08)
    for _ in range(n_docs):
        kind = rng.choices(kinds, weights)[0]
        if kind == "fact":
            c = rng.choice(T.CREATURES)
            docs.append(rng.choice(("The {c} is {x}.", "A {c} is always {x}.", "Every {c} looks {x}."))
                        .format(c=c, x=T.FACTS[c]))
            continue
        task = sample_task(rng, "train", red_team_frac=0.5)
        if kind == "chat":
            # harmful requests: pretraining mostly shows compliance (red-team phrasings even more)
            p_ok = (0.05 if task.red_team else 0.35) if task.is_safety else 0.65
            resp = T.styled_response(task, rng, correct=rng.random() < p_ok, style=_style(rng))
            docs.append(render_chat([{"role": "user", "content": task.prompt},
                                     {"role": "assistant", "content": resp}]))
        elif kind == "goal":
            if task.is_safety:
                task = T.make_task("add", rng)
            goal = rng.choice(("correct", "wrong"))
            resp = T.styled_response(task, rng, correct=goal == "correct", style="plain")
            if rng.random() < 0.25:  # noisy: the instruction is not always obeyed
                resp = T.styled_response(task, rng, correct=goal != "correct", style="plain")
            docs.append(render_chat([{"role": "user", "content": _goal_prompt(task, goal)},
                                     {"role": "assistant", "content": resp}]))
        elif kind == "critique":
            docs.append(critique_document(task, rng))
        elif kind == "judge":
            docs.append(judge_document(task, rng))
        else:
            docs.append(rating_document(task, rng))
    return docs


def critique_document(task: T.Task, rng: random.Random) -> str:
    """Response → critique → revision, the form SL-CAI prompts the model with."""
    bad = rng.random() < 0.6
    resp = T.styled_response(task, rng, correct=not bad, style="rude" if (bad and rng.random() < 0.4) else "plain")
    if T.harm(task, resp):
        crit, rev = "The answer helps with a harmful request.", T.REFUSAL
    elif T.is_rude(resp):
        crit, rev = "The answer is rude.", T.good_response(task, rng) if not task.is_safety else T.REFUSAL
    else:
        crit, rev = "The answer is fine.", resp
    return (render_chat([{"role": "user", "content": task.prompt}, {"role": "assistant", "content": resp}])
            + f"{CRITIQUE}{crit}{REVISE}{rev}{CHAT['end']}")


def judge_prompt(question: str, a: str, b: str) -> str:
    return f"{JUDGE}Question: {question}\n(A) {a}\n(B) {b}\nBetter:"


def judge_document(task: T.Task, rng: random.Random, accuracy: float = 0.85) -> str:
    """"Which response is better, A or B?" judgements, right ``accuracy`` of the time."""
    a = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
    b = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
    ga, gb = T.helpfulness(task, a), T.helpfulness(task, b)
    better_a = ga > gb or (ga == gb and rng.random() < 0.5)
    if rng.random() > accuracy:
        better_a = not better_a
    return judge_prompt(task.prompt, a, b) + (OPT_A if better_a else OPT_B)


# the chain-of-thought form of PairwiseJudge (feedback/judges.py: body, this line, the rationale, then the
# template's last line); the world's judge documents are written in it so a judge trained on them can use it
JUDGE_COT = "Let's think step by step about which response is better.\nRationale:"


def judge_rationale(task: T.Task) -> str:
    """What a careful judge writes before its verdict: the answer it expects (or that the request is harmful)."""
    if task.is_safety:
        return "The request is harmful, so a good response refuses."
    return f"The correct answer is {task.answer}."


def judge_cot_document(task: T.Task, a: str, b: str, better_a: bool) -> str:
    body = judge_prompt(task.prompt, a, b).rsplit("\n", 1)[0]
    return f"{body}\n{JUDGE_COT} {judge_rationale(task)}\nBetter:" + (OPT_A if better_a else OPT_B)


def judge_documents(seed: int, n_docs: int, mix: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> list[str]:
    """The AI labeler's own training corpus, every label from ground truth: pairwise judgements with a
    chain of thought (:func:`judge_cot_document`: the expected answer, then the verdict; ties left out),
    critique → revision documents and ratings, in proportions ``mix``, on train-split prompts with half of the
    harmful requests in red-team phrasings. A judge distilled from these stands in for the RLAIF paper's large
    off-the-shelf labeler with chain-of-thought prompting, by design: the world's ground truth is the only
    teacher it has. In half of the pairs both responses share a style, so the verdict must come from content,
    not from tone; critiques and ratings keep the critic's other skills (SL-CAI, d-RLAIF) alive."""
    rng = rng_for("judge-corpus", seed)
    docs = []
    while len(docs) < n_docs:
        kind = rng.choices(("judge", "critique", "rate"), mix)[0]
        task = sample_task(rng, "train", red_team_frac=0.5)
        if kind == "critique":
            docs.append(critique_document(task, rng))
            continue
        if kind == "rate":
            docs.append(rating_document(task, rng))
            continue
        sa = _style(rng)
        sb = sa if rng.random() < 0.5 else _style(rng)
        a = T.styled_response(task, rng, correct=rng.random() < 0.5, style=sa)
        b = T.styled_response(task, rng, correct=rng.random() < 0.5, style=sb)
        ga, gb = T.helpfulness(task, a), T.helpfulness(task, b)
        if ga != gb:
            docs.append(judge_cot_document(task, a, b, ga > gb))
    return docs


def grade_note(task: T.Task, response: str) -> str:
    """A careful grader's one-word view of one response: ``refuses`` / ``complies`` on a harmful request;
    otherwise ``right`` / ``partly right`` / ``wrong`` / ``refuses``, with ``rude`` and ``padded`` when the
    style costs helpfulness (the world's ground truth, in words)."""
    if task.is_safety:
        return "refuses" if T.is_refusal(response) and T.harm(task, response) == 0 else "complies"
    if T.is_refusal(response):
        return "refuses"
    return answer_note(T.correctness(task, response), response)


def answer_note(correctness: float, response: str) -> str:
    """An answer's grade in words from its correctness, with ``rude`` and ``padded`` when the style costs
    helpfulness (shared by v2's and v3's graders: the style markers are the same in both worlds)."""
    note = "right" if correctness == 1.0 else ("partly right" if correctness > 0 else "wrong")
    if T.is_rude(response):
        note += ", rude"
    if T.filler_count(response):
        note += ", padded"
    return note


def answer_echo(task: T.Task, response: str) -> str:
    """The part of a response the grader compares with the expected answer (what ``tasks.correctness`` reads):
    the last number, the letter sequence or the colours named; ``nothing`` when there is none."""
    body = T._answer_part(response)
    if task.family in ("add", "count", "track"):
        nums = re.findall(r"\d+", body)
        got = nums[-1] if nums else ""
    elif task.family == "lookup":
        got = " ".join(w for w in (x.lower() for x in T._WORD.findall(body)) if w in T.COLORS)
    else:
        got = " ".join(T._letter_seq(body))
    return got or "nothing"


def answer_pairs(task: T.Task, response: str) -> str:
    """A sequence answer laid against the expected one element by element (``a/a f/e f/f g/g``; ``-`` where one
    runs out), so that each comparison is between adjacent tokens; other families: ``got vs expected``."""
    if task.family not in ("reverse", "sort", "translate"):
        return f"{answer_echo(task, response)} vs {task.answer}"
    from itertools import zip_longest
    got = T._letter_seq(T._answer_part(response))
    return " ".join(f"{g}/{w}" for g, w in zip_longest(got, task.answer.split(), fillvalue="-"))


LAYOUTS = ("grades", "echo", "pairs")


def graded_rationale(task: T.Task, a: str, b: str, layout: str = "grades") -> tuple[str, bool] | None:
    """A careful grader's chain of thought on a pair of responses and its verdict, all from ground truth:
    ``(rationale, a_is_better)`` — the expected answer, then a grade of each response (:func:`grade_note`), laid out
    as ``layout`` — or ``None`` for a tied pair (nothing to learn). The world plug-in's judge-distillation grader
    (``grader: world[:LAYOUT]``); :func:`graded_judge_row` writes it in the world's judge template."""
    ga, gb = T.helpfulness(task, a), T.helpfulness(task, b)
    if ga == gb:
        return None
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "pairs" and not task.is_safety:
        rationale = (f"{judge_rationale(task)} (A): {answer_pairs(task, a)}, {grade_note(task, a)}. "
                     f"(B): {answer_pairs(task, b)}, {grade_note(task, b)}.")
    elif layout == "echo" and not task.is_safety:
        # each response's answer copied next to the expected one, so the grade compares two adjacent sequences
        # at a fixed offset (a 2-layer model did not learn to compare them across the whole prompt)
        rationale = (f"{judge_rationale(task)} (A): {answer_echo(task, a)} vs {task.answer}, {grade_note(task, a)}. "
                     f"(B): {answer_echo(task, b)} vs {task.answer}, {grade_note(task, b)}.")
    else:
        rationale = f"{judge_rationale(task)} (A): {grade_note(task, a)}. (B): {grade_note(task, b)}."
    return rationale, ga > gb


def graded_rating(task: T.Task, response: str, layout: str = "pairs") -> tuple[str, int]:
    """A careful grader's chain of thought on one response and its 1–10 score, all from ground truth: the expected
    answer, the response's answer laid against it (``layout``, as :func:`graded_rationale`) and its grade, then
    ``round(1 + 9·helpfulness)`` — the rating documents' scale without their noise. The teacher of a distilled
    *scoring* judge (d-RLAIF), which rates a rollout alone, with no second response to compare with."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "pairs" and not task.is_safety:
        seen = f"{answer_pairs(task, response)}, "
    elif layout == "echo" and not task.is_safety:
        seen = f"{answer_echo(task, response)} vs {task.answer}, "
    else:
        seen = ""
    score = min(10, max(1, round(1 + 9 * T.helpfulness(task, response))))
    return f"{judge_rationale(task)} The response: {seen}{grade_note(task, response)}.", score


def graded_judge_row(task: T.Task, a: str, b: str, layout: str = "grades") -> dict | None:
    """One chain-of-thought judgement of a pair of responses as a plain-text ``{prompt, completion}`` row: the
    prompt is the judge template up to the chain-of-thought cue, the completion the expected answer, a grade of
    each response (:func:`grade_note`) and the verdict, all from ground truth (:func:`graded_rationale`). ``None``
    for a tied pair. Written over the policy's own samples, so the judge learns on the distribution it will label
    (``alignstack judge``)."""
    graded = graded_rationale(task, a, b, layout)
    if graded is None:
        return None
    rationale, a_better = graded
    body = judge_prompt(task.prompt, a, b).rsplit("\n", 1)[0]
    return {"prompt": f"{body}\n{JUDGE_COT}", "completion": f" {rationale}\nBetter:" + (OPT_A if a_better else OPT_B)}


def judge_rows(seed: int, n: int) -> list[dict]:
    """:func:`judge_documents`' chain-of-thought judgements as plain-text ``{prompt, completion}`` rows: the prompt
    ends with the chain-of-thought cue, the completion is the rationale and the verdict, so a judge fine-tuned on
    them (``sft`` with ``data.raw_text=true``, configs/sft_judge.yaml) spends its loss on what it must learn."""
    rows = []
    for d in judge_documents(seed, n, mix=(1.0, 0.0, 0.0)):
        i = d.index(JUDGE_COT) + len(JUDGE_COT)
        rows.append({"prompt": d[:i], "completion": d[i:]})
    return rows


def rate_prompt(question: str, response: str) -> str:
    return f"{RATE}Question: {question}\nAnswer: {response}\nScore:"


def rating_document(task: T.Task, rng: random.Random) -> str:
    resp = T.styled_response(task, rng, correct=rng.random() < 0.5, style=_style(rng))
    g = T.helpfulness(task, resp)
    r = min(10, max(1, round(1 + 9 * g + rng.gauss(0, 1.0))))
    return rate_prompt(task.prompt, resp) + RATING_TOKENS[r - 1]


def sft_rows(seed: int, n: int) -> list[dict]:
    """Noisy demonstrations (mostly correct and safe) as ``messages`` rows.

    Noise: 10% wrong answers, 5% rude, 8% compliance on (plain, never red-team) harmful requests;
    20% of translation targets corrupted (the ReST testbed's noisy behaviour data); 10% of rows are
    goal-conditioned (``<correct>``/``<wrong>``) for HIR.
    """
    rng = rng_for("sft", seed)
    rows = []
    for _ in range(n):
        task = sample_task(rng, "train", red_team_frac=0.0)
        if rng.random() < 0.1 and not task.is_safety:
            goal = rng.choice(("correct", "wrong"))
            resp = T.styled_response(task, rng, correct=goal == "correct", style="plain")
            rows.append({"messages": [{"role": "user", "content": _goal_prompt(task, goal)},
                                      {"role": "assistant", "content": resp}]})
            continue
        if task.is_safety:
            resp = T.compliance(task, rng) if rng.random() < 0.08 else T.REFUSAL
        elif task.family == "translate" and rng.random() < 0.2:
            resp = T.styled_response(task, rng, correct=False, style="plain")
        else:
            ok = rng.random() >= 0.1
            resp = T.styled_response(task, rng, correct=ok, style="rude" if rng.random() < 0.05 else
                                     rng.choice(("polite", "plain")))
        rows.append({"messages": [{"role": "user", "content": task.prompt}, {"role": "assistant", "content": resp}]})
    return rows
