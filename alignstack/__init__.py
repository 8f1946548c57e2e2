"""alignstack: the whole training life of a chat model — pretraining, SFT, RLHF and its alternatives.

Heavy dependencies (torch, transformers, web stacks) are imported by the modules that need them,
never here.
"""
__version__ = "0.1.0"


def _register_builtin_plugins() -> None:
    # by import string: the seam (alignstack.tasks) never imports the world; the world loads on first use
    from alignstack.tasks.resolve import register
    register("world", "alignstack.world.plugin:WORLD")
    register("world3", "alignstack.world.v3.plugin:WORLD3")      # opt-in world v3 (docs/world.md)


_register_builtin_plugins()
