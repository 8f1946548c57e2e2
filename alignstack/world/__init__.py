"""The built-in synthetic world: tasks with ground truth, corpus, demonstrations, annotators.

It is data and ground truth only; it never imports training code.

Two versions stay loadable: v2 (the default: ``alignstack.world.tasks``/``corpus``) and the opt-in
v3 (``alignstack.world.v3``; docs/world.md). :func:`world_version` names the default.
"""
from alignstack.world.corpus import WORLD_VERSION

VERSIONS = ("2", "3")


def world_version(version: str | None = None) -> str:
    """The world version a run uses: ``version`` checked against :data:`VERSIONS`, else the default."""
    if version is None:
        return WORLD_VERSION
    if str(version) not in VERSIONS:
        raise ValueError(f"unknown world version {version!r}; expected one of {VERSIONS}")
    return str(version)


__all__ = ["VERSIONS", "WORLD_VERSION", "world_version"]
