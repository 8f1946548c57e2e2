"""One-line errors with the fix for missing extras, `--temperature 0`, `import:` from the current folder,
config keys in `--help`, W&B logging and LoRA targets per architecture (issue 25)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignstack.cli import main
from alignstack.config import ConfigError, LoraConfig, MissingExtra

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys, argv, extra):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and f"pip install 'alignstack[{extra}]'" in err
    return err


def test_label_help_without_sqlalchemy_is_one_line():
    code = ("import sys; sys.modules['sqlalchemy'] = None\n"
            "from alignstack.cli import main; sys.exit(main(['label', '--help']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == "error: alignstack label needs the 'sqlalchemy' package: pip install 'alignstack[label]'"


def _sft_args(nano, tmp_path):
    from alignstack.data.sources import write_jsonl
    d = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "hi", "completion": "ok"}] * 2)
    return ["sft", f"out={tmp_path}/o", f"model.path={nano['path']}", f"data.path={d}", "optim.max_steps=1",
            "optim.batch_size=2", "log.progress=false"]


def test_tensorboard_and_lora_without_their_packages(nano, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # as if tensorboard were not installed
    err = _one_line_error(capsys, _sft_args(nano, tmp_path) + ["log.tensorboard=true"], "tensorboard")
    assert "log.tensorboard=true needs the 'tensorboard' package" in err
    monkeypatch.setitem(sys.modules, "peft", None)
    err = _one_line_error(capsys, _sft_args(nano, tmp_path) + ["model.lora.enabled=true"], "lora")
    assert "model.lora.enabled=true needs the 'peft' package" in err


def test_wandb_is_an_optional_extra(tmp_path, monkeypatch):
    from alignstack.train.metrics import MetricsLogger
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtra, match=r"log.wandb=true needs the 'wandb' package: pip install 'alignstack\[wandb\]'"):
        MetricsLogger(tmp_path, 3, "sft", progress=False, wandb=True)

    calls = []

    class Run:
        def log(self, d, step):
            calls.append(("log", d, step))

        def finish(self):
            calls.append(("finish",))

    class FakeWandb:                      # stands in for the package: records what the logger sends
        @staticmethod
        def init(**kw):
            calls.append(("init", kw))
            return Run()

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    lg = MetricsLogger(tmp_path, 3, "sft", progress=False, wandb=True)
    lg.log(2, {"loss": 0.5, "note": "x", "flag": True})
    lg.close()
    assert calls[0][0] == "init" and calls[0][1]["project"] == "mine" and calls[0][1]["name"] == "sft"
    assert calls[1] == ("log", {"loss": 0.5}, 2) and calls[2] == ("finish",)


def test_generate_temperature_zero_is_greedy(nano, tmp_path, capsys):
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"g{seed}.jsonl"
        assert main(["generate", "--model", str(nano["path"]), "--prompts", "world:dev", "--n-prompts", "3", "-k", "2",
                     "--temperature", "0", "--max-new-tokens", "6", "--seed", str(seed), "--out", str(out)]) == 0
        outs.append([json.loads(x)["completions"] for x in out.read_text().splitlines()])
    assert outs[0] == outs[1] and all(c[0] == c[1] for c in outs[0])
    with pytest.raises(SystemExit):
        main(["generate", "--model", str(nano["path"]), "--temperature", "-1", "--out", str(tmp_path / "x.jsonl")])


def test_import_specs_resolve_from_the_current_folder(tmp_path, monkeypatch):
    from alignstack.rollout.scorers import make_scorer
    (tmp_path / "myrewards_issue25.py").write_text(
        "def score(prompts, completions, **kw):\n    return [float(len(c)) for c in completions]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    assert make_scorer("import:myrewards_issue25:score")([[{"role": "user", "content": "q"}]], ["abc"]) == [3.0]


def test_method_help_lists_config_keys(capsys):
    with pytest.raises(SystemExit) as e:
        main(["dpo", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for key in ("loss = 'sigmoid'", "model.chat_template = None", "data.drop_empty_targets = False",
                "optim.lr = ", "log.wandb = False", "model.lora.target_modules = None"):
        assert key in out, key


def test_lora_targets_per_architecture_and_all_linear(nano):
    import copy

    from transformers import GPT2Config, GPT2LMHeadModel

    from alignstack.models.load import apply_lora
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
    m = apply_lora(gpt2, LoraConfig(enabled=True))                    # GPT-2: c_attn / c_proj, not q_proj...
    wrapped = {n.rsplit(".", 2)[-2] for n, _ in m.named_modules() if n.endswith("lora_A")}
    assert wrapped == {"c_attn", "c_proj"}
    m = apply_lora(copy.deepcopy(nano["model"]), LoraConfig(enabled=True, target_modules="all-linear"))
    wrapped = {n.rsplit(".", 2)[-2] for n, _ in m.named_modules() if n.endswith("lora_A")}
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= wrapped and "lm_head" not in wrapped
    with pytest.raises(ConfigError, match=r"\['query'\] not in this llama model"):
        apply_lora(copy.deepcopy(nano["model"]), LoraConfig(enabled=True, target_modules=["query"]))
