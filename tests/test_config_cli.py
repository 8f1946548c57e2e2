import subprocess
import sys
from pathlib import Path

import pytest

from alignstack.cli import main
from alignstack.config import ConfigError, load
from alignstack.methods.pretrain import PretrainConfig
from alignstack.methods.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]


def config_class(path: Path):
    """configs/<method>[_variant].yaml → the method's config class (the CLI's METHODS map)."""
    import importlib

    from alignstack.cli import METHODS
    name = max((m for m in METHODS if path.stem == m or path.stem.startswith(m + "_")), key=len, default=None)
    assert name is not None, f"{path.name}: no method named by the file (expected <method>[_variant].yaml)"
    mod, cls = METHODS[name]
    return getattr(importlib.import_module(mod), cls)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load(config_class(path), path)
    assert cfg.out


def test_overrides_are_typed():
    cfg = load(SFTConfig, overrides=["optim.lr=1e-4", "model.lora.enabled=true", "optim.betas=[0.9, 0.99]"])
    assert cfg.optim.lr == 1e-4 and cfg.model.lora.enabled is True and cfg.optim.betas == (0.9, 0.99)


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"):
        load(SFTConfig, overrides=["optim.lrr=1"])


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  batch_size: lots\n")
    with pytest.raises(ConfigError, match=r"c.yaml: optim.batch_size: expected int, got str 'lots'"):
        load(SFTConfig, p)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load(SFTConfig, "/nope.yaml")


def test_cli_errors_are_one_paragraph(tmp_path, capsys):
    assert main(["sft", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "did you mean" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}\n')
    assert main(["sft", f"data.path={bad}", f"model.path={tmp_path}/none", f"out={tmp_path}/o"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, row 1, field 'messages[1].content'" in err and "empty" in err
    assert main(["sft", f"model.path={tmp_path}/none", f"out={tmp_path}/o", "data.n_rows=10"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["nonsense"]) == 2


def test_every_command_has_help():
    for cmd in ("world", "pretrain", "sft", "generate", "eval", "demo"):
        r = subprocess.run([sys.executable, "-m", "alignstack.cli", cmd, "--help"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), (cmd, r.stderr[-500:])


def test_partial_group_override_keeps_method_defaults():
    cfg = load(PretrainConfig, overrides=["data.n_rows=5", "optim.max_steps=3"])
    assert cfg.data.packing is True and cfg.data.n_rows == 5          # PretrainConfig's own data defaults
    assert cfg.optim.lr == 3e-3 and cfg.optim.max_steps == 3
