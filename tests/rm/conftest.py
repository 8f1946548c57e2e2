import pytest


@pytest.fixture(autouse=True)
def _rm_one_thread(one_thread):
    """Every reward-model test runs on one intra-op thread (tests/conftest.py's ``one_thread`` says why)."""
    yield
