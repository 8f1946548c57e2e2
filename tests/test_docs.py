"""The guides stay true: every `alignstack` command in README/docs exists, every config file they name
exists and loads into its method's config, accelerate configs parse, and the pipeline example in the
quick start is a valid pipeline."""
import re
import shlex
from pathlib import Path

import pytest
import yaml

from alignstack.cli import COMMANDS, METHOD_BASE, METHODS
from alignstack.config import load

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands():
    for doc in DOCS:
        for block in _blocks(doc.read_text(), "bash"):
            block = block.replace("\\\n", " ")
            for line in block.splitlines():
                line = line.split("#")[0].strip()
                m = re.search(r"(?:^|\s|/)alignstack(?:\.cli)? (\S+)(.*)", line)
                if m and not line.startswith(("pip", "git")):
                    yield doc.name, m.group(1), m.group(2)


def test_every_documented_command_exists():
    seen = list(_commands())
    assert len(seen) > 20
    bad = [(d, c) for d, c, _ in seen if c not in COMMANDS and not c.startswith(("<", "-"))]
    assert not bad, bad


@pytest.mark.parametrize("doc,cmd,rest", [c for c in _commands() if "--config" in c[2]], ids=lambda x: str(x)[:40])
def test_documented_configs_load(doc, cmd, rest):
    args = shlex.split(rest.replace("...", ""))
    for flag, value in zip(args, args[1:]):
        if flag == "--config":
            assert (ROOT / value).exists(), f"{doc}: {value} does not exist"
            mod_name, cls_name = METHODS[cmd]
            import importlib
            cls = getattr(importlib.import_module(mod_name), cls_name)
            load(cls, ROOT / value, METHOD_BASE.get(cmd, []))
        if flag == "--config_file":
            assert isinstance(yaml.safe_load((ROOT / value).read_text()), dict)


def test_example_configs_load():
    import importlib
    for p in sorted((ROOT / "configs" / "examples").glob("*.yaml")):
        method = next(m for m in ("dpo", "sft", "ppo", "reward_model") if f"_{m}" in p.stem)
        mod_name, cls_name = METHODS[method]
        load(getattr(importlib.import_module(mod_name), cls_name), p)
    for p in sorted((ROOT / "configs" / "accelerate").glob("*.yaml")):
        assert yaml.safe_load(p.read_text())["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")


def test_quickstart_pipeline_example_is_valid(tmp_path):
    from alignstack.pipeline import load_pipeline
    block = [b for b in _blocks((ROOT / "docs" / "quickstart.md").read_text(), "yaml") if "stages:" in b][0]
    (tmp_path / "p.yaml").write_text(block)
    cfg = load_pipeline(tmp_path / "p.yaml")
    assert [s.method for s in cfg.stages] == ["sft", "dpo"]
