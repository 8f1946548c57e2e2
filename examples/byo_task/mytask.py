"""The task of this example project: small sums and differences ("What is 3 plus 4?").

Everything alignstack needs to know about the task is here, outside the package:

- ``check(example, response)`` — the verifier. ``example.meta`` holds every extra column of the prompt row
  (``answer``, ``a``, ``b``, ``op``), so the reference answer reaches it untouched.
- ``Relabel`` — HIR's hindsight relabeler: its goals, and which one a response achieved.

Configs name them ``verifier: import:mytask:check`` and ``relabel: import:mytask:Relabel``; alignstack
imports ``mytask`` from the folder it runs in.
"""
import re

_INT = re.compile(r"-?\d+")


def answer_of(response: str) -> int | None:
    """The last integer in the response ("3 plus 4 is 7." → 7)."""
    found = _INT.findall(response)
    return int(found[-1]) if found else None


def check(example, response: str) -> float:
    """1.0 when the response ends on the reference answer (the prompt row's ``answer`` column)."""
    return float(answer_of(response) == int(example.meta["answer"]))


class Relabel:
    """HIR: ``correct`` if the verifier accepts the response, else ``wrong``; the model is asked for the first
    goal at sampling time (``<correct> What is 3 plus 4?``)."""

    goals = ("correct", "wrong")

    def __call__(self, example, response: str) -> str:
        return "correct" if check(example, response) else "wrong"
