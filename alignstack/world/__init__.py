"""The built-in synthetic world: tasks with ground truth, corpus, demonstrations, annotators.

It is data and ground truth only; it never imports training code.
"""
from alignstack.world.corpus import WORLD_VERSION

__all__ = ["WORLD_VERSION"]
