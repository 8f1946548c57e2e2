"""``resolve(spec, kind)``: one spec syntax for every config key that names a task component.

    world[:ARG]             the built-in world (or any registered plug-in by name): its own component
    rows:PATH               prompt rows (JSONL / JSON / Parquet / ``datasets`` folder), every column kept
    file:PATH | PATH        a file: text corpus, red-team rows, constitution, judge template, prompt rows
    import:pkg.mod:name     a user's object (module found on sys.path or in the current folder); a class
                            or factory is called with the options it accepts (``seed``, …)
    exact[:FIELD] | exact_ci[:FIELD] | numeric[:TOL[:FIELD]] | regex:PATTERN     built-in verifiers
    verifier:SPEC           a judge-distillation grader built from any verifier spec (``grader:`` only)

Plug-ins are registered by name (:func:`register`, or the ``alignstack.tasks`` entry-point group); the
package registers ``world`` lazily by import string, so this module never imports the world. A spec
that does not resolve raises :class:`TaskSpecError` naming the config key and what was tried.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from alignstack.config import ConfigError
from alignstack.tasks.types import Example, PoolSource, VerifierRelabeler, example_from_row

KINDS = {"prompts": "prompt source", "verifier": "verifier", "reward": "reward", "relabel": "relabeler",
         "documents": "document source", "demonstrations": "demonstration set", "red_team": "red-team prompt set", "constitution": "constitution",
         "judge_template": "judge template", "grader": "grader"}
FILE_KINDS = ("prompts", "documents", "red_team", "constitution", "judge_template")

_PLUGINS: dict[str, Any] = {}


class TaskSpecError(ConfigError):
    """A task spec (``prompts:``, ``verifier:``, …) that does not resolve; one line, naming the key."""


def register(name: str, plugin: Any) -> None:
    """Make ``name[:ARG]`` resolve through ``plugin`` — an object with any of the methods ``prompts``,
    ``verifier``, ``reward``, ``relabel``, ``documents``, ``red_team``, ``constitution``, ``grader``, or a lazy
    ``"module:attribute"`` string (imported on first use)."""
    if not name or ":" in name or name in ("rows", "file", "import"):
        raise ValueError(f"bad plug-in name {name!r}")
    _PLUGINS[name] = plugin


def plugin(name: str) -> Any | None:
    p = _PLUGINS.get(name)
    if p is None:
        try:
            from importlib.metadata import entry_points
            eps = [e for e in entry_points(group="alignstack.tasks") if e.name == name]
        except Exception:  # noqa: BLE001 — broken metadata must not hide the real error below
            eps = []
        if not eps:
            return None
        p = _PLUGINS[name] = eps[0].load()
    if isinstance(p, str):
        p = _PLUGINS[name] = load_object(p, f"plug-in {name!r}")
    return p


def load_object(target: str, key: str = "import") -> Any:
    """``pkg.module:attr`` → the object; the current folder is searched too (a user's project)."""
    mod, _, attr = target.partition(":")
    if not mod or not attr:
        raise TaskSpecError(f"{key}: expected 'import:package.module:name', got 'import:{target}'")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        obj = importlib.import_module(mod)
    except ModuleNotFoundError as e:
        raise TaskSpecError(f"{key}: cannot import module {mod!r} ({e}); searched sys.path and the current "
                            f"folder {cwd}") from None
    except Exception as e:  # noqa: BLE001 — a user module that fails on import: say so in one line
        raise TaskSpecError(f"{key}: importing {mod!r} failed: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaskSpecError(f"{key}: module {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _call_with(fn, opts: dict):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn()
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**opts)
    return fn(**{k: v for k, v in opts.items() if k in params})


class ListDocuments:
    finite = True

    def __init__(self, docs: list[str]):
        from alignstack.tasks.builtin import TextDocuments
        self.docs = list(docs)
        self.documents = lambda n, seed: TextDocuments.documents(self, n, seed)


class _FunctionRelabeler(VerifierRelabeler):
    """A plain ``fn(example, response) -> goal`` with the default goals."""

    def __init__(self, fn, goals=("correct", "wrong")):
        self.fn, self.goals = fn, tuple(goals)

    def __call__(self, example: Example, response: str) -> str:
        return self.fn(example, response)


def _adapt(obj: Any, kind: str, opts: dict, key: str, spec: str) -> Any:
    """Fit a user's imported object to ``kind``'s protocol (or say why it does not fit)."""
    if kind in ("verifier", "reward"):
        if not callable(obj):
            raise TaskSpecError(f"{key}: {spec!r} is not callable")
        return obj
    if kind == "relabel":
        if not callable(obj):
            raise TaskSpecError(f"{key}: {spec!r} is not callable")
        if inspect.isclass(obj):
            obj = _call_with(obj, opts)
        return obj if hasattr(obj, "goals") else _FunctionRelabeler(obj)
    if kind == "grader":
        if inspect.isclass(obj):
            obj = _call_with(obj, opts)
        if not hasattr(obj, "grade"):
            if not callable(obj):
                raise TaskSpecError(f"{key}: {spec!r} gave a {type(obj).__name__}, not a grader (needs a 'grade' "
                                    "method, or a function (example, a, b) -> (rationale, a_is_better) | None)")
            from alignstack.tasks.builtin import FunctionGrader
            obj = FunctionGrader(obj)
        return obj
    if kind == "judge_template":
        if not isinstance(obj, str):
            raise TaskSpecError(f"{key}: {spec!r} is not a template string")
        return obj
    wants = {"prompts": "batch", "documents": "documents", "demonstrations": "conversations", "red_team": "harmful", "constitution": "critique_revision"}
    if not hasattr(obj, wants[kind]) and callable(obj):
        obj = _call_with(obj, opts)                     # a class or factory
    if kind == "prompts" and isinstance(obj, list):
        obj = PoolSource([o if isinstance(o, Example) else example_from_row(o) for o in obj], opts.get("seed", 0))
    if kind == "documents" and isinstance(obj, list):
        obj = ListDocuments(obj)
    if kind == "constitution" and isinstance(obj, dict):
        from alignstack.tasks.builtin import parse_constitution
        obj = parse_constitution(obj, spec)
    if not hasattr(obj, wants[kind]):
        raise TaskSpecError(f"{key}: {spec!r} gave a {type(obj).__name__}, not a {KINDS[kind]} "
                            f"(needs a '{wants[kind]}' attribute)")
    return obj


def _from_file(path: str, kind: str, opts: dict, key: str):
    from alignstack.tasks import builtin as B
    p = Path(path)
    if kind == "judge_template":
        if not p.is_file():
            raise TaskSpecError(f"{key}: judge template file not found: {p}")
        return str(p)
    if not p.exists():
        raise TaskSpecError(f"{key}: file not found: {p} (a {KINDS[kind]} file)")
    if kind == "prompts":
        src = B.RowsPromptSource(p, opts.get("seed", 0))
        for name in list(_PLUGINS):              # rows a plug-in recognises as its own keep its ground truth
            hook = getattr(plugin(name), "ground_truth_for", None)
            gt = hook(src.examples) if hook else None
            if gt is not None:
                src.ground_truth = gt
                break
        return src
    if kind == "documents":
        return B.TextDocuments(p)
    if kind == "red_team":
        return B.RowsRedTeamSet(p)
    return B.load_constitution(p)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or Path(spec).suffix in (".jsonl", ".json", ".parquet", ".txt", ".md",
                                                               ".yaml", ".yml", ".csv") or Path(spec).exists()


def resolve(spec: str, kind: str, *, key: str | None = None, **opts) -> Any:
    """The component of ``kind`` (see :data:`KINDS`) that ``spec`` names; ``opts`` (``seed``, ``families``,
    …) go to plug-ins and factories that accept them."""
    from alignstack.data.formats import DataError

    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")
    key = key or kind
    if not isinstance(spec, str) or not spec.strip():
        raise TaskSpecError(f"{key}: empty spec (expected world, rows:PATH, import:module:name, …)")
    spec = spec.strip()
    name, _, arg = spec.partition(":")
    try:
        if name == "import":
            return _adapt(load_object(arg, key), kind, opts, key, spec)
        if name in ("rows", "file"):
            if kind not in FILE_KINDS:
                raise TaskSpecError(f"{key}: a {KINDS[kind]} cannot come from a file ({spec!r}); use import:mod:fn")
            if name == "rows" and kind not in ("prompts", "red_team", "documents"):
                raise TaskSpecError(f"{key}: rows:PATH names prompt rows; a {KINDS[kind]} is file:PATH")
            return _from_file(arg, kind, opts, key)
        if kind == "verifier":
            from alignstack.tasks.builtin import builtin_verifier
            v = builtin_verifier(name, arg)
            if v is not None:
                return v
        if kind == "grader" and name == "verifier":
            from alignstack.tasks.builtin import VerifierGrader
            _need_verifier_spec(arg, key)
            return VerifierGrader(resolve(arg, "verifier", key=key, **opts))
        p = plugin(name)
        if p is not None:
            fn = getattr(p, kind, None)
            if fn is None:
                raise TaskSpecError(f"{key}: plug-in {name!r} provides no {KINDS[kind]}")
            return _call_with(fn, {"arg": arg, **opts}) if "arg" in inspect.signature(fn).parameters else fn(arg)
        if kind in FILE_KINDS and _looks_like_path(spec):
            return _from_file(spec, kind, opts, key)
    except TaskSpecError:
        raise
    except (DataError, ConfigError) as e:
        raise TaskSpecError(f"{key}: {e}") from None
    except (ValueError, FileNotFoundError, OSError) as e:
        raise TaskSpecError(f"{key}: cannot build a {KINDS[kind]} from {spec!r}: {e}") from None
    tried = ["plug-ins " + ", ".join(sorted(_PLUGINS)) if _PLUGINS else "no plug-ins registered", "import:module:name"]
    if kind in FILE_KINDS:
        tried.insert(1, "rows:PATH / file:PATH / an existing path")
    if kind == "verifier":
        tried.insert(1, "exact[:FIELD], exact_ci, numeric[:TOL], regex:PATTERN")
    if kind == "grader":
        tried.insert(1, "verifier:SPEC")
    raise TaskSpecError(f"{key}: cannot resolve {spec!r} as a {KINDS[kind]}; tried {'; '.join(tried)}")


def _need_verifier_spec(arg: str, key: str) -> None:
    if not arg.strip():
        raise TaskSpecError(f"{key}: 'verifier:SPEC' needs a verifier spec after the colon (exact, numeric:TOL, "
                            "regex:PATTERN, import:module:fn)")


def check_spec(spec: str | None, kind: str, key: str) -> None:
    """Cheap check that ``spec`` has a form ``kind`` accepts (no file read, no user module imported), for
    config validation when a config is built; :func:`resolve` does the real work later."""
    if spec is None:
        return
    if not isinstance(spec, str) or not spec.strip():
        raise TaskSpecError(f"{key}: empty spec (expected world, rows:PATH, import:module:name, …)")
    name, _, arg = spec.strip().partition(":")
    if name == "import":
        mod, _, attr = arg.partition(":")
        if not mod or not attr:
            raise TaskSpecError(f"{key}: expected 'import:package.module:name', got {spec!r}")
        return
    if name in ("rows", "file"):
        if kind not in FILE_KINDS or not arg:
            raise TaskSpecError(f"{key}: {spec!r}: a {KINDS[kind]} cannot come from {name}:PATH")
        return
    if kind == "grader" and name == "verifier":
        _need_verifier_spec(arg, key)
        check_spec(arg, "verifier", key)
        return
    if kind == "verifier" and name in ("exact", "exact_ci", "numeric", "regex"):
        from alignstack.tasks.builtin import builtin_verifier
        try:
            builtin_verifier(name, arg)
        except ValueError as e:
            raise TaskSpecError(f"{key}: {e}") from None
        return
    if name in _PLUGINS or (kind in FILE_KINDS and _looks_like_path(spec)):
        return
    if plugin(name) is not None:
        return
    raise TaskSpecError(f"{key}: cannot resolve {spec!r} as a {KINDS[kind]}; expected "
                        + ", ".join([*sorted(_PLUGINS), *(["rows:PATH", "file:PATH"] if kind in FILE_KINDS else []),
                                     *(["exact", "numeric:TOL", "regex:PATTERN"] if kind == "verifier" else []),
                                     *(["verifier:SPEC"] if kind == "grader" else []),
                                     "import:module:name"]))
