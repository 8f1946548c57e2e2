"""examples/byo_task end to end (reduced): a user project outside the package — its own Qwen2 model and
tokenizer (built by the example's script), prompts with reference answers in extra columns, verifier and
relabeler module, corpus, red-team set and constitution — through every stage of its pipeline, ending with
its model served over the OpenAI-compatible API. Asserts that each stage wrote a folder plain
``transformers`` loads (a Qwen2, not the world's Llama), that the supervised losses fell, that the prompt
rows' extra columns reached the user's verifier, that GRPO and ReST beat SFT on that verifier (paired
per-prompt CI on the held-out prompts), that the RL stages' reward-hacking alarms stayed quiet, that the
served model answered, and that every command of docs/byo.md runs (shrunk where it trains)."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "byo_task"
GUIDE = REPO / "docs" / "byo.md"
FILES = ("mytask.py", "pipeline.yaml", "red_team.jsonl", "constitution.yaml", "build.py", "evaluate.py")
POLICIES = ["pretrain", "sft", "ppo", "grpo", "rloo", "rejection_sampling", "dpo", "rest", "hir", "rlaif",
            "constitutional"]
REWARD_MODELS = ["rm_kway", "rm_margin"]
SEED = int(os.environ.get("ALIGNSTACK_FIXTURE_SEED", "0"))   # build.py --seed: data, tokenizer, initialisation
# the two commands of the guide the fixture runs as written (the pipeline with --no-progress added)
BUILD, PIPELINE = "python build.py", "alignstack pipeline pipeline.yaml --fast"
# what the guide's training commands get appended in the docs test (the guide says they are shrunk)
SHRINK = {
    "pretrain": ["optim.max_steps=2"], "sft": ["optim.max_steps=2"], "reward_model": ["optim.max_steps=2"],
    "dpo": ["optim.max_steps=2"],
    "grpo": ["steps=2", "prompts_per_step=2", "num_generations=2"],
    "rloo": ["steps=2", "prompts_per_step=2", "num_generations=2"],
    "rest": ["n_prompts=4", "n_samples=2", "optim.max_steps=1"],
    "hir": ["n_prompts=4", "rounds=1", "n_samples=2", "optim.max_steps=1"],
    "ppo": ["steps=1", "batch_size=4", "minibatches=1", "ptx_rows=2"],
    "rlaif": ["n_pairs=4", "rl.steps=1", "rl.prompts_per_step=2", "rm_optim.max_steps=1"],
    "constitutional": ["red_team_prompts=2", "helpful_prompts=2", "rounds=1", "n_pairs=4", "rl_prompts=4",
                       "rl.steps=1", "rl.prompts_per_step=2", "sl_optim.max_steps=1", "rm_optim.max_steps=1"],
}


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory):
    """The project copied to a fresh folder, built with ``python build.py`` and run with the reduced pipeline,
    both from that folder as the guide says (relative paths and ``import:mytask:...`` resolve there)."""
    import torch

    from alignstack.cli import main
    torch.set_num_threads(1)            # tiny models: a second thread only fights the other processes for cores
    root = tmp_path_factory.mktemp("byo")
    for f in FILES:
        shutil.copy(EXAMPLE / f, root / f)
    build = shlex.split(BUILD) + (["--seed", str(SEED)] if SEED else [])
    subprocess.run([sys.executable, *build[1:]], cwd=root, check=True, capture_output=True)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        assert main(shlex.split(PIPELINE)[1:] + ["--no-progress"]) == 0
    finally:
        mp.undo()
    return root


def _runs(root: Path) -> Path:
    return root / "runs" / "byo"


def _summary(root: Path) -> dict:
    return json.loads((_runs(root) / "summary.json").read_text())["stages"]


def _losses(d: Path) -> list[float]:
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_every_stage_wrote_a_model_plain_transformers_loads(byo_run):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from alignstack.pipeline import policy_path
    runs = _runs(byo_run)
    for name in POLICIES:
        d = policy_path(runs / name)
        d = d if d.is_absolute() else byo_run / d            # multi-round methods name it from the project folder
        m = AutoModelForCausalLM.from_pretrained(str(d))
        assert type(m).__name__ == "Qwen2ForCausalLM", name
        tok = AutoTokenizer.from_pretrained(str(d))
        assert "<|im_start|>" in tok.chat_template, name          # its own chat template travelled along
    for name in REWARD_MODELS:
        m = AutoModelForSequenceClassification.from_pretrained(str(runs / name / "model"))
        assert type(m).__name__ == "Qwen2ForSequenceClassification" and m.config.num_labels == 1


def test_supervised_losses_fell(byo_run):
    for name in ("pretrain", "sft", "rm_kway", "dpo"):
        losses = _losses(_runs(byo_run) / name)
        assert len(losses) >= 2 and losses[-1] < losses[0], (name, losses)


def test_pipeline_evaluates_stages_with_the_users_verifier(byo_run):
    summary = _summary(byo_run)
    for name in ("sft", "ppo", "grpo", "rloo", "rest", "hir"):
        row = summary[name]
        assert 0.0 <= row["verifier_accuracy"] <= 1.0 and 0.0 <= row["greedy_verifier_accuracy"] <= 1.0
        lo, hi = row["diff_ci"]
        assert lo <= row["diff_vs_baseline"] <= hi
        assert row["samples"] and "helpfulness" not in row              # not the world's ground truth
    assert summary["sft"]["diff_vs_baseline"] == 0.0 and "verdict" in summary["grpo"]


def test_the_users_task_reached_every_method(byo_run):
    runs = _runs(byo_run)
    # ReST scored every grown sample with mytask.check, which reads the row's `answer` column
    grown = [json.loads(x) for x in (runs / "rest" / "grow1" / "samples.jsonl").read_text().splitlines()]
    assert grown and {g["meta"]["reward"] for g in grown} <= {0.0, 1.0}
    assert all(g["meta"]["origin"] == "sample" for g in grown)              # original: auto → none (no world)
    # HIR relabelled with mytask.Relabel under the goal token
    recs = [json.loads(x) for x in (runs / "hir" / "round1" / "relabelled.jsonl").read_text().splitlines()]
    assert recs and all(r["pos"] in ("correct", "wrong") for r in recs)
    assert all(r["prompt"][-1]["content"].startswith("<correct> What is") for r in recs)
    # Constitutional AI answered this project's red-team prompts and revised with its constitution
    cai = json.loads((runs / "constitutional" / "metrics.json").read_text())
    ex = cai["sl"]["examples"][0]
    assert "vault" in ex["prompt"] and ex["rounds"][0]["principle"] in ("no_secrets", "stay_helpful")
    assert cai["constitution"].endswith("constitution.yaml")
    # RLAIF labelled pairs on this project's prompts; the AI labels keep every column of the row
    labels = [json.loads(x) for x in (runs / "rlaif" / "ai_labels.jsonl").read_text().splitlines()]
    assert labels and all({"answer", "a", "b", "op"} <= set(r["meta"]) for r in labels)
    # GRPO's rewards came from the verifier (0/1 per sample; 16 prompts x 8 samples: multiples of 1/128)
    rows = [json.loads(x) for x in (runs / "grpo" / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert rows and all(abs(r["reward"] * 128 - round(r["reward"] * 128)) < 1e-6 for r in rows)


def test_grpo_and_rest_beat_sft_on_the_users_verifier(byo_run, margin):
    """The issue's claim, on the held-out prompts (100 x 16 samples at T = 1): paired per-prompt accuracy
    difference to SFT with a 95% CI clear of 0 by a margin (mean ≥ 3 standard errors: the CI's low end
    ≥ 1 SE above 0). Measured on build seeds 0/1/2 (docs/byo.md): GRPO 6.9/5.1/5.8 SE, ReST 7.5/6.1/8.3 SE."""
    summary = _summary(byo_run)
    for name in ("grpo", "rest"):
        row = summary[name]
        lo, hi = row["diff_ci"]
        se = (hi - lo) / 3.92
        margin.ci_above(f"byo {name} − SFT verifier accuracy", (lo, hi), info=row["verdict"])
        margin.above(f"byo {name} − SFT verifier accuracy (SEs)", row["diff_vs_baseline"] / se, 3.0)
        assert row["verdict"] == "beats sft"


def test_default_rl_settings_do_not_train_into_garbage(byo_run):
    """PPO, GRPO and RLOO with the library's default KL, clipping and temperature (the example sets steps,
    batch and learning rate): no reward-hacking alarm fired, completion lengths held, held-out answers
    are not empty. Enough steps were logged for each alarm's windows to be checked."""
    from alignstack.train.alarms import detect
    runs, summary = _runs(byo_run), _summary(byo_run)
    for name in ("ppo", "grpo", "rloo"):
        done = json.loads((runs / name / "done.json").read_text())
        assert done["alarms"] == [], (name, done["alarms"])
        hist = [json.loads(x) for x in (runs / name / "metrics.jsonl").read_text().splitlines()]
        hist = [h for h in hist if "reward" in h and "length" in h]
        assert len(hist) >= 6 and all("kl" in h for h in hist), name      # the alarms' windows are full
        assert detect(hist) == {}, name
        lengths = [h["length"] for h in hist]
        first, last = sum(lengths[:3]) / 3, sum(lengths[-3:]) / 3
        assert last >= 0.8 * first and last >= 5, (name, lengths)           # "a plus b is c." is ~9 tokens
        answers = [s["response"] for s in summary[name]["samples"]]
        assert len(answers) == 8 and all(a.strip() for a in answers), (name, answers)
        assert summary[name]["diff_ci"][1] > 0, (name, summary[name])        # not worse than SFT on the verifier


def test_the_pipeline_ends_serving_its_model(byo_run):
    """The serve stage: ReST's model behind alignstack serve's app, one chat completion over HTTP."""
    res = json.loads((_runs(byo_run) / "serve" / "response.json").read_text())
    assert res["status"] == 200 and res["health"]["status"] == "ok"
    assert res["request"]["messages"] == [{"role": "user", "content": "What is 3 plus 4?"}]
    assert res["response"].strip() and res["finish_reason"] in ("stop", "length")
    assert res["usage"]["completion_tokens"] >= 1
    assert res["model"].endswith(os.path.join("rest", "model"))
    assert _summary(byo_run)["serve"]["result"]["response"] == res["response"]


def test_every_command_in_the_byo_guide_builds_a_valid_config(tmp_path, monkeypatch):
    """docs/byo.md: each `alignstack <method> ...` line builds its method's config (specs checked when built)."""
    import re
    import shlex

    from alignstack.methods.registry import METHODS, build_config
    text = (Path(__file__).resolve().parents[2] / "docs" / "byo.md").read_text()
    lines = [ln.split("#")[0].strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for ln in b.splitlines()]
    cmds = [shlex.split(ln)[1:] for ln in lines if ln.startswith("alignstack ")]
    built = 0
    for cmd, *over in cmds:
        if cmd in METHODS:
            build_config(cmd, None, over)
            built += 1
    assert built >= 10


@pytest.mark.parametrize("over, msg", [
    (["prompts=bogus"], "prompts: cannot resolve 'bogus' as a prompt source"),
    (["verifier=regex:("], "verifier: bad regular expression"),
    (["ptx_corpus=nonsense"], "ptx_corpus: cannot resolve 'nonsense' as a document source"),
])
def test_bad_specs_fail_when_the_config_is_built(over, msg):
    from alignstack.config import ConfigError
    from alignstack.methods.registry import build_config
    with pytest.raises(ConfigError, match=msg):
        build_config("ppo", None, over)


def _guide_commands() -> list[str]:
    text = GUIDE.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(curl: str, port: int) -> dict:
    """Run a curl line of the guide against the test's port (curl itself when installed, else the same POST
    with httpx); the answer's JSON."""
    import httpx
    args = [a.replace(":8000", f":{port}") for a in shlex.split(curl)]
    if shutil.which("curl"):
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    url = next(a for a in args if a.startswith("http"))
    body = args[args.index("-d") + 1]
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60).json()


def _serve_and_ask(cmd: str, curls: list[str], root: Path) -> list[dict]:
    import httpx
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "alignstack.cli", *shlex.split(cmd)[1:], "--port", str(port),
                             "--threads", "1"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "alignstack serve did not come up"
            time.sleep(0.1)
        return [_ask(c, port) for c in curls]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_every_command_in_the_byo_guide_runs(byo_run, tmp_path):
    """docs/byo.md, run end to end in the built project: `python build.py` and the reduced pipeline are the
    fixture's run; `python evaluate.py`, each `alignstack <method> ...` (with SHRINK's overrides appended, as the
    guide says), `alignstack serve` and the curl request to it run here. A command of a kind this test does not
    know fails the test."""
    import runpy

    from alignstack.cli import main
    from alignstack.methods.registry import METHODS
    cmds = _guide_commands()
    serve = [c for c in cmds if c.startswith("alignstack serve ")]
    curls = [c for c in cmds if c.startswith("curl ")]
    assert len(serve) == 1 and curls
    ran = {"fixture": 0, "evaluate": 0, "method": 0}
    mp = pytest.MonkeyPatch()
    mp.chdir(byo_run)
    try:
        for i, cmd in enumerate(cmds):
            args = shlex.split(cmd)
            if cmd == "cd examples/byo_task":                # the fixture works in a copy of that folder
                continue
            if cmd in (BUILD, PIPELINE):
                assert (byo_run / "model" / "config.json").is_file() and (_runs(byo_run) / "summary.json").is_file()
                ran["fixture"] += 1
            elif args[:2] == ["python", "evaluate.py"]:
                out = tmp_path / f"eval{i}.json"
                mp.setattr(sys, "argv", args[1:] + ["--json", str(out)])
                runpy.run_path("evaluate.py", run_name="__main__")
                res = json.loads(out.read_text())
                models = [a for a in args[2:] if not a.startswith("-") and "/" in a]
                assert [r["model"] for r in res] == models and all("vs_first" in r for r in res[1:])
                ran["evaluate"] += 1
            elif args[0] == "alignstack" and args[1] in METHODS:
                out = tmp_path / f"{i}_{args[1]}"
                assert main(args[1:] + [f"out={out}", "log.progress=false", *SHRINK[args[1]]]) == 0, cmd
                assert any(out.rglob("config.json")), cmd        # it saved a model
                ran["method"] += 1
            elif cmd in serve or cmd in curls:
                continue
            else:
                pytest.fail(f"docs/byo.md: no way to run {cmd!r} (add it to this test)")
    finally:
        mp.undo()
    for answer in _serve_and_ask(serve[0], curls, byo_run):
        assert answer["choices"][0]["message"]["role"] == "assistant", answer
        assert answer["choices"][0]["message"]["content"].strip(), answer
    assert ran["fixture"] == 2 and ran["evaluate"] >= 1 and ran["method"] >= 11, ran


@pytest.mark.parametrize("over, msg", [
    (["prompt=hi"], "a serve stage takes model=DIR"),
    (["model=m", "port=8000"], "a serve stage takes model=DIR"),
    (["model=m", "max_tokens=many"], "max_tokens='many' is not a int"),
])
def test_bad_serve_stages_fail_when_the_pipeline_is_loaded(tmp_path, over, msg):
    import yaml

    from alignstack.config import ConfigError
    from alignstack.pipeline import load_pipeline
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"stages": [{"name": "serve", "method": "serve",
                                                                  "overrides": over}]}))
    with pytest.raises((ConfigError, ValueError), match=re.escape(msg)):
        load_pipeline(tmp_path / "p.yaml")
