"""Shared fixtures. `trained_world` builds the tokenizer, a pretrained and an SFT tiny model once,
cached on disk under .cache/fixtures keyed by the world version and the resolved fixture configs, and every
method test reuses it.

``ALIGNSTACK_FIXTURE_SEED`` (default 0) sets the training seed of the fixture models (initialisation and
data order; the world's data stay the same): the ground-truth tests must pass on fixtures trained with any seed,
and ``scripts/margins.py`` runs them across several to report each test's smallest margin."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
FIXTURE_SEED = int(os.environ.get("ALIGNSTACK_FIXTURE_SEED", "0"))
FIXTURE_OVERRIDES = {
    "pretrain": ["data.n_rows=40000", "log.progress=false", f"seed={FIXTURE_SEED}"],
    "sft": ["data.n_rows=12000", "log.progress=false", f"seed={FIXTURE_SEED}"],
}
FIXTURE_REVISION = "1"


@pytest.fixture(scope="session")
def trained_world():
    import torch

    from alignstack.world import WORLD_VERSION

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    key = _fixture_key(WORLD_VERSION)
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
            "tokenizer": base / "pretrain" / "tokenizer", "info": info,
            "seed": FIXTURE_SEED}


def _fixture_key(world_version: str) -> str:
    """The cache key: the world version (bumped whenever generated data change), the fixture's overrides and seed,
    and ``FIXTURE_REVISION``, bumped by hand when a change to the training code moves the fixture's numbers. CI
    always builds the fixture afresh; a local cache that may be stale after such a change is removed with
    ``rm -r .cache/fixtures``. (Hashing the training code's source made every unrelated edit retrain it.)"""
    return hashlib.sha256(json.dumps([world_version, FIXTURE_OVERRIDES, FIXTURE_REVISION]).encode()).hexdigest()[:12]


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


class Margins:
    """The assertions of the ground-truth tests, with their margins on record.

    Each check asserts a statistic against its threshold and, when ``ALIGNSTACK_MARGIN_LOG`` names a file,
    appends ``{test, stat, value, threshold, margin, z, seed, passed}`` to it (JSON lines, written before the
    assertion so failures are recorded too). ``z`` is the margin in standard errors where the statistic comes
    with a 95% CI: how far the CI's bound clears the threshold. ``scripts/margins.py`` runs the tests on
    several fixture seeds and reports each check's smallest margin."""

    def __init__(self, test: str, asserting: bool = True):
        self.test = test
        self.asserting = asserting
        self.log = os.environ.get("ALIGNSTACK_MARGIN_LOG")

    @property
    def recorded(self) -> Margins:
        """The same checks, recorded but not asserted: for a paper claim measured not to hold on every fixture seed.
        It stays on record (margins.md shows where it holds and where not) instead of leaving the suite, and is
        not asserted, because the standards write a failing claim down as failing rather than re-tune it."""
        return Margins(self.test, asserting=False)

    def _check(self, stat: str, value: float, threshold: float, above: bool, se: float | None, info) -> None:
        margin = (value - threshold) if above else (threshold - value)
        z = margin / se if se else None
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps({"test": self.test, "stat": stat, "value": value, "threshold": threshold,
                                    "above": above, "margin": margin, "z": z, "seed": FIXTURE_SEED,
                                    "passed": margin > 0, "asserted": self.asserting}) + "\n")
        if self.asserting:
            assert margin > 0, (f"{stat}: {value:.4f} is not {'above' if above else 'below'} {threshold:.4f}", info)

    def above(self, stat: str, value: float, threshold: float, info=None, se: float | None = None) -> None:
        self._check(stat, float(value), float(threshold), True, se, info)

    def below(self, stat: str, value: float, threshold: float, info=None, se: float | None = None) -> None:
        self._check(stat, float(value), float(threshold), False, se, info)

    def ci_above(self, stat: str, ci, threshold: float = 0.0, info=None) -> None:
        """The 95% CI's lower bound clears ``threshold``; ``ci`` is ``{lo, hi}``, ``{ci95: [lo, hi]}`` or a pair."""
        lo, hi = _bounds(ci)
        self._check(stat + " (CI low)", lo, threshold, True, (hi - lo) / 3.92 or None, info or ci)

    def ci_below(self, stat: str, ci, threshold: float = 0.0, info=None) -> None:
        lo, hi = _bounds(ci)
        self._check(stat + " (CI high)", hi, threshold, False, (hi - lo) / 3.92 or None, info or ci)


def _bounds(ci) -> tuple[float, float]:
    if isinstance(ci, dict):
        return tuple(ci["ci95"]) if "ci95" in ci else (ci["lo"], ci["hi"])
    return tuple(ci)


@pytest.fixture
def margin(request):
    return Margins(request.node.nodeid)


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads were ~3x slower for tiny models
    (tests/rm and tests/world_v3/test_v3_feedback.py use it for every test)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
