"""Shared fixtures. `trained_world` builds the tokenizer, a pretrained and an SFT tiny model once,
cached on disk under .cache/fixtures keyed by the world version and the fixture config, and every
method test reuses it."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
FIXTURE_OVERRIDES = {
    "pretrain": ["data.n_rows=40000", "log.progress=false"],
    "sft": ["data.n_rows=12000", "log.progress=false"],
}


@pytest.fixture(scope="session")
def trained_world():
    import torch

    from alignstack.world import WORLD_VERSION

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    key = hashlib.sha256(json.dumps([WORLD_VERSION, FIXTURE_OVERRIDES,
                                     (ROOT / "alignstack/methods/pretrain.py").read_text(),
                                     (ROOT / "alignstack/config.py").read_text(),
                                     (ROOT / "alignstack/methods/sft.py").read_text()]).encode()).hexdigest()[:12]
    base = Path(os.environ.get("ALIGNSTACK_FIXTURE_DIR", ROOT / ".cache" / "fixtures")) / key
    done = base / "done.json"
    base.mkdir(parents=True, exist_ok=True)
    import fcntl
    with open(base.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # concurrent test runs build the fixture once
        if not done.exists():
            _build_fixture(base, done)
    info = json.loads(done.read_text())

    return {"dir": base, "pretrained": base / "pretrain" / "model", "sft": base / "sft" / "model",
            "tokenizer": base / "pretrain" / "tokenizer", "info": info}


def _build_fixture(base: Path, done: Path) -> None:
    from alignstack.config import load
    from alignstack.methods import pretrain, sft

    pre = pretrain.train(load(pretrain.PretrainConfig, overrides=[f"out={base}/pretrain",
                                                                   *FIXTURE_OVERRIDES["pretrain"]]))
    s = sft.train(load(sft.SFTConfig, overrides=[f"out={base}/sft", f"model.path={base}/pretrain/model",
                                                  *FIXTURE_OVERRIDES["sft"]]))
    done.write_text(json.dumps({"pretrain": pre, "sft": s}, default=str))


@pytest.fixture(scope="session")
def nano(tmp_path_factory):
    """A random nano model + world tokenizer saved as a HF folder (seconds to build)."""
    from alignstack.models.load import build_model, save_pretrained_atomic
    from alignstack.models.tokenizer import train_tokenizer
    from alignstack.world.corpus import corpus_documents

    d = tmp_path_factory.mktemp("nano")
    tok = train_tokenizer(corpus_documents(0, 3000))
    model = build_model("nano", tok)
    save_pretrained_atomic(model, tok, d / "model")
    return {"path": d / "model", "tokenizer": tok, "model": model}


CHROMIUM = os.environ.get("ALIGNSTACK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ALIGNSTACK_CHROMEDRIVER", "/usr/bin/chromedriver")


def make_chrome(user_data_dir: Path, width: int = 1280, height: int = 900):
    """Headless Debian Chromium driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


@pytest.fixture
def chrome(tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed")
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.access(exe, os.X_OK):
            pytest.skip(f"{exe} not found: apt-get install -y chromium chromium-driver")
    driver = make_chrome(tmp_path / "chrome-profile")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
