"""World v3 (opt-in; v2 stays the default): splits by problem and template identity, a sealed test
split, harm that must be learned (many secrets, paraphrases, held-out jailbreak styles, partial
leaks), benign lookalikes, harder benign families, scores never merged, an annotator pool.
See docs/world.md.
"""
from alignstack.world.v3.lexicon import VERSION as WORLD_VERSION

__all__ = ["WORLD_VERSION"]
