"""The task seam: where a method's prompts, rewards, relabelling, documents, red-team prompts,
constitution and a judge's grader come from. Imports neither the world nor any method; the world is one plug-in
(``alignstack/world/plugin.py``), registered by name in ``alignstack/__init__.py``."""
from alignstack.tasks.resolve import TaskSpecError, register, resolve
from alignstack.tasks.types import (
    Constitution,
    DocumentSource,
    Example,
    Grader,
    PoolSource,
    Principle,
    PromptSource,
    RedTeamSet,
    Relabeler,
    Verifier,
    VerifierRelabeler,
    example_from_row,
)

__all__ = ["Constitution", "DocumentSource", "Example", "Grader", "PoolSource", "Principle", "PromptSource", "RedTeamSet",
           "Relabeler", "TaskSpecError", "Verifier", "VerifierRelabeler", "example_from_row", "register", "resolve"]
