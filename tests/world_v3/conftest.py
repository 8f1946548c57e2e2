"""Shared fixtures of the world v3 tests."""
import importlib.util
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _load(name: str):
    # experiments/ is scripts, not a package: load one by path, as `python experiments/<name>.py` would run it
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


@pytest.fixture(scope="session")
def load_experiment():
    """``load_experiment("world_v3_seeds")`` → the module of ``experiments/world_v3_seeds.py``."""
    return _load
