"""Build this example project's data and model (run once, from this folder: ``python build.py``).

Writes ``data/`` (prompts with reference answers in extra columns, SFT conversations — 40% of them hedging
"I do not know." instead of answering, so SFT leaves headroom that the verifier rewards — K-way rankings,
strength-labelled pairs, a text corpus) and ``model/``: a randomly initialised Qwen2 causal LM (~0.1M
parameters) with a byte-level BPE tokenizer trained here with the ``tokenizers`` library, carrying its own
ChatML-style chat template. Everything is a deterministic function of ``--seed``; nothing large is committed.
"""
import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
HEDGE, HEDGE_TEXT = 0.4, "I do not know."   # share of SFT demonstrations that do not answer


def problem(rng: random.Random) -> dict:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    op = rng.choice(["plus", "minus"])
    if op == "minus" and b > a:
        a, b = b, a
    return {"prompt": f"What is {a} {op} {b}?", "answer": a + b if op == "plus" else a - b, "a": a, "b": b,
            "op": op}


def say(p: dict, value: int) -> str:
    return f"{p['a']} {p['op']} {p['b']} is {value}."


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_data(out: Path, seed: int, hedge: float = HEDGE) -> None:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    probs = [problem(rng) for _ in range(600)]
    write_jsonl(out / "prompts.jsonl", probs[:200])                     # RL / ReST / HIR / RLAIF prompts
    write_jsonl(out / "eval_prompts.jsonl", probs[200:300])              # held out: the verifier's eval
    sft = probs[300:600]
    # the demonstrations hedge: a share of them answer "I do not know." (headroom that the verifier rewards)
    write_jsonl(out / "sft.jsonl", [{"messages": [{"role": "user", "content": p["prompt"]},
                                                  {"role": "assistant", "content": HEDGE_TEXT if rng.random() < hedge
                                                   else say(p, p["answer"])}]}
                                    for p in sft])
    rank, pairs = [], []
    for p in sft:
        off = rng.choice([1, 2, 3])
        resp = [say(p, p["answer"]), say(p, p["answer"] + 1), say(p, p["answer"] + off + 3), "I do not know."]
        order = list(range(4))
        rng.shuffle(order)
        responses = [resp[i] for i in order]
        rank.append({"prompt": p["prompt"], "responses": responses,
                     "ranking": sorted(range(4), key=lambda j: order[j])})
        wrong = say(p, p["answer"] + rng.choice([1, 2, 5]))
        pairs.append({"prompt": p["prompt"], "chosen": say(p, p["answer"]), "rejected": wrong,
                      "strength": rng.choice(["significantly_better", "better"])})
    write_jsonl(out / "rankings.jsonl", rank)
    write_jsonl(out / "pairs.jsonl", pairs)
    docs = []
    for _ in range(1500):                                                  # the pretraining corpus
        p = problem(rng)
        docs.append(rng.choice([f"{say(p, p['answer'])} So {p['prompt'][8:-1]} makes {p['answer']}.",
                                f"Question: {p['prompt']} Answer: {say(p, p['answer'])}",
                                f"We count {p['a']} and then {p['op']} {p['b']}; the result is {p['answer']}."]))
    (out / "corpus.txt").write_text("\n\n".join(docs) + "\n")


def build_model(out: Path, data: Path, seed: int, vocab_size: int = 600) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    texts = (data / "corpus.txt").read_text().split("\n\n")
    texts += [json.dumps(json.loads(x)) for x in (data / "sft.jsonl").read_text().splitlines()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                 additional_special_tokens=["<|im_start|>", "<|endoftext|>"])
    hf.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=hf.pad_token_id, eos_token_id=hf.eos_token_id,
                      bos_token_id=None)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id = hf.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    hf.save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: Qwen2, {n / 1e6:.2f}M parameters, vocab {len(hf)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(HERE), help="project folder (data/ and model/ are written here)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    root = Path(a.out)
    build_data(root / "data", a.seed)
    build_model(root / "model", root / "data", a.seed)
