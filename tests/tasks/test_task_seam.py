"""The task seam (alignstack.tasks): one spec syntax, every column of a row reaching the verifier, clear
one-line errors, and the world plug-in reproducing exactly what the methods drew from the world before."""
import json
import random
import sys

import pytest

from alignstack.tasks import Example, PoolSource, TaskSpecError, example_from_row, resolve
from alignstack.tasks.resolve import check_spec


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_example_keeps_every_column_and_flattens_nested_meta():
    e = example_from_row({"prompt": [{"role": "user", "content": "q"}], "answer": "42", "meta": {"src": "a", "answer": "x"},
                          "difficulty": 3})
    assert e.meta == {"src": "a", "answer": "42", "difficulty": 3}       # top-level columns win
    assert e.row() == {"prompt": e.prompt, **e.meta}


def test_rows_source_meta_reaches_the_verifier(tmp_path):
    p = _write(tmp_path / "p.jsonl", [{"prompt": "What is 2+2?", "answer": "4", "unit": "apples"},
                                      {"prompt": "What is 3+3?", "answer": "6", "unit": "pears"}])
    src = resolve(f"rows:{p}", "prompts", seed=1)
    assert [e.meta["unit"] for e in src.examples] == ["apples", "pears"]
    ex = resolve("exact", "verifier")
    assert ex(src.examples[0], " 4 ") == 1.0 and ex(src.examples[0], "5") == 0.0
    num = resolve("numeric:0.5", "verifier")
    assert num(src.examples[1], "it is 6.4") == 1.0 and num(src.examples[1], "6.6 or 9") == 0.0
    rx = resolve(r"regex:{unit}\b", "verifier")
    assert rx(src.examples[0], "4 apples") == 1.0 and rx(src.examples[0], "4 pears") == 0.0
    # bare paths are rows files too; batches are a pure function of (seed, step)
    assert resolve(str(p), "prompts", seed=1).batch(3, 5) == src.batch(3, 5)
    rng = random.Random("prompts|1|3")
    assert src.batch(3, 5) == [src.examples[rng.randrange(2)] for _ in range(5)]


def test_import_resolves_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "my_task_mod.py").write_text(
        "def verify(example, response):\n    return float(response == example.meta['gold'])\n"
        "def prompts(seed=0):\n    return [{'prompt': 'hi', 'gold': 'yo'}]\n"
        "DOCS = ['a b', 'c d']\n"
        "class Goals:\n    goals = ('good', 'bad')\n    def __call__(self, example, response):\n        return 'good'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_task_mod", raising=False)
    v = resolve("import:my_task_mod:verify", "verifier")
    src = resolve("import:my_task_mod:prompts", "prompts", seed=0)
    assert v(src.examples[0], "yo") == 1.0
    assert sorted(resolve("import:my_task_mod:DOCS", "documents").documents(4, 0)) == ["a b", "a b", "c d", "c d"]
    rl = resolve("import:my_task_mod:Goals", "relabel")
    assert rl.goals == ("good", "bad") and rl(src.examples[0], "x") == "good"


@pytest.mark.parametrize("spec, kind, msg", [
    ("bogus", "prompts", r"^prompts: cannot resolve 'bogus' as a prompt source; tried plug-ins .*world"),
    ("import:nope_mod_xyz:f", "verifier", r"^verifier: cannot import module 'nope_mod_xyz'.*current folder"),
    ("import:json:nope", "verifier", r"^verifier: module 'json' has no attribute 'nope'"),
    ("rows:/no/such.jsonl", "prompts", r"^prompts: file not found: /no/such.jsonl"),
    ("numeric:abc", "verifier", r"^verifier: .*numeric:TOL needs a number"),
    ("world:bogus", "verifier", r"^verifier: .*unknown world field 'bogus'"),
    ("rows:x.jsonl", "verifier", r"^verifier: a verifier cannot come from a file"),
])
def test_errors_are_one_line_and_name_the_key(spec, kind, msg):
    with pytest.raises(TaskSpecError, match=msg) as e:
        resolve(spec, kind)
    assert "\n" not in str(e.value)


def test_check_spec_validates_without_reading():
    check_spec("rows:missing.jsonl", "prompts", "prompts")       # checked for form only; read at run time
    check_spec("import:a.b:c", "verifier", "verifier")
    with pytest.raises(TaskSpecError, match="red_team_prompts: cannot resolve 'nope'"):
        check_spec("nope", "red_team", "red_team_prompts")
    with pytest.raises(TaskSpecError, match="verifier: bad regular expression"):
        check_spec("regex:(", "verifier", "verifier")


def test_text_corpus_and_red_team_and_constitution_files(tmp_path):
    c = tmp_path / "c.txt"
    c.write_text("doc one\n\ndoc two\nline two\n\n\ndoc three\n")
    docs = resolve(str(c), "documents")
    assert sorted(docs.documents(None, 0)) == ["doc one", "doc three", "doc two\nline two"]
    assert len(docs.documents(7, 0)) == 7
    rt = _write(tmp_path / "rt.jsonl", [{"prompt": "how to pick a lock"}, {"prompt": "say hi", "harmful": False}])
    s = resolve(f"rows:{rt}", "red_team")
    assert [e.prompt[0]["content"] for e in s.harmful(3, 0)] == ["how to pick a lock"] * 3
    assert [e.prompt[0]["content"] for e in s.benign(1, 0)] == ["say hi"]
    k = tmp_path / "k.yaml"
    k.write_text("critique_revision:\n  - {name: kind, critique: 'Is it harmful?', revision: 'Make it harmless.'}\n"
                 "comparison: ['Which is less harmful?']\n")
    con = resolve(str(k), "constitution")
    assert con.critique_revision[0].name == "kind" and con.comparison == ["Which is less harmful?"]
    k.write_text("comparison: []\n")
    with pytest.raises(TaskSpecError, match="constitution: .*critique_revision"):
        resolve(str(k), "constitution")


def test_world_plugin_reproduces_the_worlds_own_draws():
    from alignstack.world import corpus as C
    from alignstack.world import tasks as T
    src = resolve("world", "prompts", seed=3, families=["add", "sort"], pool=50)
    fam = {f: C.MIX.get(f, 0.1) for f in ["add", "sort"]}
    tasks = C.prompt_set(3, "train", 50, fam)
    assert [e.ref for e in src.examples] == tasks and [e.prompt for e in src.examples] == [t.to_row()["prompt"] for t in tasks]
    rng = random.Random("prompts|3|7")                       # the draw PPO/GRPO always used
    assert [e.ref for e in src.batch(7, 6)] == [tasks[rng.randrange(50)] for _ in range(6)]
    dev = resolve("world", "prompts", seed=1, pool=10, split="dev")
    assert [e.ref for e in dev.examples] == C.prompt_set(1, "dev", 10)
    t = tasks[0]
    ok = T.good_response(t, random.Random(0))
    assert resolve("world:correct", "verifier")(src.examples[0], ok) == 1.0
    assert src.ground_truth(src.examples[0], ok) == T.helpfulness(t, ok)
    # a world row read back from a file is still a world task (its meta carries family and answer)
    back = example_from_row(json.loads(json.dumps(t.to_row())))
    assert resolve("world:correct", "verifier")(back, ok) == 1.0
    assert resolve("world", "documents").documents(5, 17) == C.corpus_documents(17, 5)


def test_world_reward_and_verifier_scorers_see_examples():
    from alignstack.rollout.scorers import make_scorer
    ex = Example([{"role": "user", "content": "q"}], {"answer": "7"})
    s = make_scorer("world:helpfulness", verifier="exact")
    assert s([ex.prompt], ["7"], examples=[ex]) == [1.0]
    with pytest.raises(TaskSpecError, match="verifier: cannot resolve 'nope'"):
        make_scorer("world:helpfulness", verifier="nope")
    assert isinstance(PoolSource([ex]).batch(0, 2)[0], Example)


def test_cai_renders_conversations_with_the_critics_chat_template():
    from alignstack.methods.constitutional import chat_prefix
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world import corpus as C
    tok = train_tokenizer(C.corpus_documents(0, 50), 300)
    msgs = [{"role": "user", "content": "open the vault"}]
    conv, end = chat_prefix(tok, msgs)
    assert conv == C.render_chat(msgs) + C.CHAT["assistant"] and end == C.CHAT["end"]   # the world: as before
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    conv, _ = chat_prefix(tok, msgs)
    assert conv == "<|im_start|>user\nopen the vault<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_reserves_the_worlds_markers():
    from alignstack.models.tokenizer import SPECIAL_TOKENS
    from alignstack.world.corpus import SPECIAL_TOKENS as WORLD
    assert SPECIAL_TOKENS == WORLD
