"""alignstack: the whole training life of a chat model — pretraining, SFT, RLHF and its alternatives.

Heavy dependencies (torch, transformers, web stacks) are imported by the modules that need them,
never here.
"""
__version__ = "0.1.0"
