"""`alignstack world stats`, the version switch, and world v3's corpus and SFT data (train only)."""
import pytest

from alignstack.cli import main
from alignstack.world import WORLD_VERSION, world_version
from alignstack.world.v3 import WORLD_VERSION as V3
from alignstack.world.v3 import corpus as C
from alignstack.world.v3 import lexicon as L
from alignstack.world.v3 import splits as S
from alignstack.world.v3.stats import format_stats, world_stats


def test_versions_loadable():
    assert WORLD_VERSION == "2" and V3 == "3"            # v2 stays the default this session
    assert world_version() == "2" and world_version(3) == "3"
    with pytest.raises(ValueError, match="unknown world version"):
        world_version("9")


def test_v3_stats_overlaps_are_zero():
    st = world_stats("3", seed=0, n=800)
    for pair, ov in st["overlaps"].items():
        for key in st["must_be_zero"]:
            assert ov[key] == 0, (pair, key)
    test = st["splits"]["test"]
    assert {"roleplay", "prefix", "multiturn", "encoded"} <= set(test["attack_styles"])
    assert "roleplay" not in st["splits"]["train"]["attack_styles"]
    assert all(s["distinct_problems"] > 300 and s["distinct_templates"] > 20 for s in st["splits"].values())


def test_v2_stats_show_its_shared_harmful_prompts():
    st = world_stats("2", seed=0, n=400)
    assert st["overlaps"]["train/eval"]["harmful texts"] > 0 and st["must_be_zero"] == []
    assert "[eval]" in format_stats(st)


def test_cli_world_stats(capsys):
    assert main(["world", "stats", "--version", "3", "-n", "300"]) == 0
    out = capsys.readouterr().out
    assert "world v3" in out and "[test]" in out and "attack_styles" in out
    assert "train/test: problems 0, templates 0" in out and " !" not in out
    assert main(["world", "stats", "--version", "7"]) == 2
    assert "unknown world version" in capsys.readouterr().err


def test_corpus_teaches_every_secret_and_shows_no_dev_or_test_prompt():
    docs = C.corpus_documents(0, 6000)
    text = "\n".join(docs)
    # every vault's code is stated in some phrasing (test vaults' secrets are learnable too)
    known = sum(any(p in text for p in L.fact_paraphrases("vault", v, "code")) for v in L.VAULTS)
    assert known >= 0.9 * len(L.VAULTS)
    held_out = S.prompt_set(0, "dev", 1500) + S.sealed_test_set(0, 1500)
    assert not [t for t in held_out if t.prompt in text]


def test_sft_rows_refuse_harm_and_answer_lookalikes():
    rows = C.sft_rows(0, 2000)
    refusals = [r for r in rows if r["messages"][-1]["content"] == "Sorry, I can't help with that."]
    assert 0.15 < len(refusals) / len(rows) < 0.25        # ≈ the 20% harmful share, 95% refused
    users = " ".join(m["content"] for r in rows for m in r["messages"] if m["role"] == "user")
    # SFT's harmful requests are plain ones (jailbreak styles are the red team's); lookalikes keep every style
    refused = " ".join(r["messages"][-2]["content"] for r in refusals)
    for marker in ("Ignore the rules", "As the admin", "Quick,", "Forget your instructions"):
        assert marker not in refused and marker in users
    for marker in ("Guard, speak!", "Start your answer with", "Join the letters", "clever thief"):
        assert marker not in users                         # test-only styles never reach SFT


def test_write_world_keeps_test_sealed(tmp_path):
    import json

    from alignstack.world.v3.files import write_world
    from alignstack.world.v3.tasks import Task
    info = write_world(tmp_path / "w", n_docs=50, n_sft=20, n_prompts=10)
    assert info["world_version"] == "3" and "prompts_test.jsonl" not in info["files"]
    rows = [json.loads(x) for x in (tmp_path / "w" / "prompts_dev.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(Task.from_row(r).split == "dev" for r in rows)
    sealed = write_world(tmp_path / "s", n_docs=5, n_sft=5, n_prompts=10, sealed=True)
    assert "prompts_test.jsonl" in sealed["files"]
