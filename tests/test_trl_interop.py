"""TRL interoperability both ways (issue 25): TRL's DPOTrainer and SFTTrainer train on an alignstack checkpoint
and on an alignstack-exported preference file (all-conversational rows), and alignstack trains on a checkpoint
that TRL wrote. Tiny models only; every trainer runs two steps on CPU."""
import json

import pytest
import torch

trl = pytest.importorskip("trl")
COMMON = dict(max_steps=2, per_device_train_batch_size=2, report_to="none", use_cpu=True, save_strategy="no",
              logging_steps=1, learning_rate=1e-3, disable_tqdm=True, dataloader_num_workers=0, seed=0, bf16=False)


def _changed(before: dict, model) -> bool:
    return any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if n in before)


@pytest.fixture(scope="module")
def exported(nano, tmp_path_factory):
    """Preference rows exported by `alignstack feedback collect` from the nano checkpoint."""
    from alignstack.feedback.cli import main
    out = tmp_path_factory.mktemp("export") / "prefs.jsonl"
    assert main(["collect", "--model", str(nano["path"]), "--out", str(out), "--mode", "preference",
                 "--n-prompts", "8", "-k", "2", "--max-new-tokens", "8"]) == 0
    return out


def test_exported_pairs_are_trl_conversational(exported):
    rows = [json.loads(x) for x in exported.read_text().splitlines()]
    assert rows and all(isinstance(r["prompt"], list) and r["prompt"][-1]["role"] == "user" for r in rows)
    assert all(r[k] == [{"role": "assistant", "content": r[k][0]["content"]}] for r in rows
               for k in ("chosen", "rejected"))


def test_trl_dpo_trains_on_an_alignstack_checkpoint_and_export(nano, exported, tmp_path):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from alignstack.models.load import load_model, load_tokenizer
    ds = load_dataset("json", data_files=str(exported), split="train").select_columns(["prompt", "chosen", "rejected"])
    model, tok = load_model(nano["path"]), load_tokenizer(nano["path"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tr = DPOTrainer(model=model, args=DPOConfig(output_dir=str(tmp_path / "trl_dpo"), max_length=128, **COMMON),
                    train_dataset=ds, processing_class=tok)
    res = tr.train()
    assert res.global_step == 2 and torch.isfinite(torch.tensor(res.training_loss)) and _changed(before, model)


def test_trl_sft_trains_on_an_alignstack_checkpoint_and_alignstack_on_what_trl_wrote(nano, exported, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from alignstack.config import load
    from alignstack.methods import dpo, sft
    from alignstack.models.load import load_model, load_tokenizer
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                          {"role": "assistant", "content": f"The answer is {i + 1}."}]} for i in range(8)]
    model, tok = load_model(nano["path"]), load_tokenizer(nano["path"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tr = SFTTrainer(model=model, args=SFTConfig(output_dir=str(tmp_path / "trl_sft"), max_length=64, **COMMON),
                    train_dataset=Dataset.from_list(rows), processing_class=tok)
    assert tr.train().global_step == 2 and _changed(before, model)
    trl_ckpt = tmp_path / "trl_ckpt"
    tr.save_model(str(trl_ckpt))                     # what a TRL user hands over: model + tokenizer folder
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)              # a TRL run and ours share no process outside a test

    common = ["optim.max_steps=2", "optim.batch_size=2", "log.progress=false", f"model.path={trl_ckpt}"]
    res = sft.train(load(sft.SFTConfig, overrides=[f"out={tmp_path}/our_sft", f"data.path={_write(tmp_path, rows)}",
                                                   *common]))
    assert res["steps"] == 2 and res["train_loss"] == res["train_loss"]
    res = dpo.train(load(dpo.DPOConfig, overrides=[f"out={tmp_path}/our_dpo", f"data.path={exported}", *common]))
    assert res["steps"] == 2
    assert load_model(tmp_path / "our_dpo" / "model").config.max_position_embeddings == 256


def _write(tmp_path, rows):
    from alignstack.data.sources import write_jsonl
    return write_jsonl(tmp_path / "sft.jsonl", rows)
