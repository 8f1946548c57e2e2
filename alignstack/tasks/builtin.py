"""Built-in implementations of the seam that need no plug-in: rows files, rule verifiers, the verifier grader,
text corpora, red-team rows files and constitution files."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from alignstack.config import ConfigError
from alignstack.tasks.types import (
    Constitution,
    Example,
    PoolSource,
    Principle,
    example_from_row,
    seeded_cycle,
)


class RowsPromptSource(PoolSource):
    """Validated ``prompt`` rows from JSONL / JSON / Parquet / a ``datasets`` folder; every column kept."""

    def __init__(self, path: str | Path, seed: int = 0):
        from alignstack.data.sources import read_rows
        self.path = str(path)
        super().__init__([example_from_row(r) for r in read_rows(path, "prompt")], seed, self.path)


# ------------------------------------------------------------------------------------------ verifiers


def _reference(example: Example, field: str):
    if field not in example.meta:
        have = ", ".join(sorted(example.meta)) or "none"
        raise ValueError(f"verifier needs the column '{field}' in every prompt row (this row has: {have})")
    return example.meta[field]


def _answer_text(response: str) -> str:
    return " ".join(response.split())


class ExactVerifier:
    """1.0 when the response, whitespace-normalised, equals the reference column (or one of a list of
    them); ``casefold`` ignores case."""

    def __init__(self, field: str = "answer", casefold: bool = False):
        self.field, self.casefold = field, casefold

    def _norm(self, s) -> str:
        s = _answer_text(str(s))
        return s.casefold() if self.casefold else s

    def __call__(self, example: Example, response: str) -> float:
        ref = _reference(example, self.field)
        refs = ref if isinstance(ref, list) else [ref]
        return float(self._norm(response) in {self._norm(r) for r in refs})


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class NumericVerifier:
    """1.0 when the *last* number in the response is within ``tol`` (absolute) of the reference column."""

    def __init__(self, tol: float = 0.0, field: str = "answer"):
        if tol < 0:
            raise ValueError(f"numeric tolerance must be ≥ 0, got {tol}")
        self.tol, self.field = tol, field

    def __call__(self, example: Example, response: str) -> float:
        ref = _reference(example, self.field)
        try:
            want = float(ref)
        except (TypeError, ValueError):
            raise ValueError(f"numeric verifier: column '{self.field}' is not a number: {ref!r}") from None
        got = _NUMBER.findall(response.replace(",", ""))
        if not got:
            return 0.0
        return float(abs(float(got[-1]) - want) <= self.tol)


class RegexVerifier:
    """1.0 when ``pattern`` matches somewhere in the response; ``{column}`` in the pattern is replaced by
    that column of the example (regex-escaped), so ``regex:answer is {answer}\\b`` checks a reference."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.fields = re.findall(r"\{(\w+)\}", pattern)
        if not self.fields:
            self._compiled = re.compile(pattern)

    def __call__(self, example: Example, response: str) -> float:
        if not self.fields:
            return float(self._compiled.search(response) is not None)
        pat = re.sub(r"\{(\w+)\}", lambda m: re.escape(str(_reference(example, m.group(1)))), self.pattern)
        return float(re.search(pat, response) is not None)


def builtin_verifier(name: str, arg: str):
    """``exact[:FIELD]``, ``exact_ci[:FIELD]``, ``numeric[:TOL[:FIELD]]``, ``regex:PATTERN`` (None if unknown)."""
    if name in ("exact", "exact_ci"):
        return ExactVerifier(arg or "answer", casefold=name == "exact_ci")
    if name == "numeric":
        tol, _, fld = arg.partition(":")
        try:
            t = float(tol) if tol else 0.0
        except ValueError:
            raise ValueError(f"numeric:TOL needs a number for TOL, got {tol!r}") from None
        return NumericVerifier(t, fld or "answer")
    if name == "regex":
        if not arg:
            raise ValueError("regex:PATTERN needs a pattern")
        try:
            return RegexVerifier(arg)
        except re.error as e:
            raise ValueError(f"bad regular expression {arg!r}: {e}") from None
    return None


# ------------------------------------------------------------------------------------------ graders


def _grade_word(score: float) -> str:
    return "right" if score >= 1.0 else "wrong" if score <= 0.0 else "partly right"


class VerifierGrader:
    """Judge distillation's grader for any task with a verifier (``grader: verifier:SPEC``): ``The correct answer
    is X. (A): right. (B): wrong.`` — X the example's reference column (the verifier's own ``field``, else
    ``answer``; the sentence is left out for rows without one), each response graded by the verifier (1: right,
    0: wrong, between: partly right); the better response is the one it scores higher, ties give no row."""

    def __init__(self, verifier, field: str | None = None):
        self.truth = verifier
        self.field = field or getattr(verifier, "field", None) or "answer"

    def grade(self, example: Example, a: str, b: str) -> tuple[str, bool] | None:
        ga, gb = float(self.truth(example, a)), float(self.truth(example, b))
        if ga == gb:
            return None
        ref = example.meta.get(self.field)
        if isinstance(ref, list):
            ref = " or ".join(map(str, ref))
        head = "" if ref is None or ref == "" else f"The correct answer is {ref}. "
        return f"{head}(A): {_grade_word(ga)}. (B): {_grade_word(gb)}.", ga > gb


class FunctionGrader:
    """A plain ``fn(example, a, b) -> (rationale, a_is_better) | None`` as a grader (no truth to measure against)."""

    truth = None

    def __init__(self, fn):
        self.grade = fn


# ------------------------------------------------------------------------------------------ documents


class TextDocuments:
    """Documents from a file: ``.txt`` (documents separated by blank lines) or rows with a ``text``
    column (JSONL / JSON / Parquet / ``datasets`` folder). ``documents(n, seed)`` returns ``n`` of them in
    a seeded order, repeating whole passes when ``n`` exceeds the corpus (None: every document once)."""

    finite = True                       # a fixed corpus: pretraining holds out some of its documents

    def __init__(self, path: str | Path):
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: corpus file not found (expected .txt, .jsonl, .json, .parquet or a "
                                    "datasets folder)")
        if p.is_file() and p.suffix in (".txt", ".md"):
            docs = [d.strip() for d in re.split(r"\n\s*\n", p.read_text(encoding="utf-8"))]
        else:
            from alignstack.data.sources import read_rows
            docs = [r["text"] for r in read_rows(p, "text")]
        self.docs, self.path = [d for d in docs if d], str(p)
        if not self.docs:
            raise ValueError(f"{p}: no documents")

    def documents(self, n: int | None, seed: int) -> list[str]:
        if n is None:
            return list(self.docs)
        out, k = [], 0
        while len(out) < n:
            order = list(range(len(self.docs)))
            random.Random(f"docs|{seed}|{k}").shuffle(order)
            out += [self.docs[i] for i in order[:n - len(out)]]
            k += 1
        return out


# ------------------------------------------------------------------------------------------ red-team sets


class RowsRedTeamSet:
    """Prompt rows; a row is harmful unless its ``harmful`` (or ``is_safety``) column is false — so a
    file of red-team prompts alone needs no extra column. Benign rows (``harmful: false``) are the
    helpful samples of SL-CAI and the benign share of RL-CAI."""

    harm = None

    def __init__(self, path: str | Path):
        from alignstack.data.sources import read_rows
        rows = read_rows(path, "prompt")
        exs = [example_from_row(r) for r in rows]

        def harmful(e: Example) -> bool:
            v = e.meta.get("harmful", e.meta.get("is_safety", True))
            return bool(v)
        self.path = str(path)
        self.harmful_pool = [e for e in exs if harmful(e)]
        self.benign_pool = [e for e in exs if not harmful(e)]
        if not self.harmful_pool:
            raise ValueError(f"{path}: no harmful rows (a row counts as harmful unless 'harmful' is false)")

    def harmful(self, n: int, seed: int) -> list[Example]:
        return seeded_cycle(self.harmful_pool, n, seed, "harmful")

    def benign(self, n: int, seed: int) -> list[Example]:
        return seeded_cycle(self.benign_pool, n, seed, "benign")


# ------------------------------------------------------------------------------------------ constitutions

PLAIN_FORMAT = {"critique": "{conversation}\nCritique request: {request}\nCritique:",
                "revision": "\nRevision request: {request}\nRevision:"}


class ConstitutionError(ConfigError):
    """A constitution file is malformed (the message names the file and field)."""


def parse_constitution(data, source: str = "<memory>") -> Constitution:
    def err(fld: str, msg: str):
        raise ConstitutionError(f"{source}: field '{fld}': {msg}")

    if not isinstance(data, dict):
        raise ConstitutionError(f"{source}: a constitution is a mapping with 'critique_revision' and 'comparison'")
    unknown = set(data) - {"critique_revision", "comparison", "format"}
    if unknown:
        err(sorted(unknown)[0], "unknown field (expected critique_revision, comparison, format)")
    cr = data.get("critique_revision")
    if not isinstance(cr, list) or not cr:
        err("critique_revision", "expected a non-empty list of {name, critique, revision}")
    principles = []
    for i, p in enumerate(cr):
        where = f"critique_revision[{i}]"
        if not isinstance(p, dict):
            err(where, "expected a mapping with 'critique' and 'revision'")
        for k in ("critique", "revision"):
            if not isinstance(p.get(k), str) or not p[k].strip():
                err(f"{where}.{k}", "missing or empty (a non-empty string is required)")
        principles.append(Principle(str(p.get("name", f"principle_{i}")), p["critique"], p["revision"]))
    comp = data.get("comparison")
    if not isinstance(comp, list) or not comp:
        err("comparison", "expected a non-empty list of comparison principles (strings)")
    for i, c in enumerate(comp):
        if not isinstance(c, str) or not c.strip():
            err(f"comparison[{i}]", "expected a non-empty string")
    fmt = data.get("format") or PLAIN_FORMAT
    if not isinstance(fmt, dict) or set(fmt) != {"critique", "revision"}:
        err("format", "expected a mapping with exactly 'critique' and 'revision'")
    if "{conversation}" not in fmt["critique"]:
        err("format.critique", "must contain {conversation}")
    for k, v in fmt.items():
        try:
            v.format(conversation="", request="")
        except (KeyError, IndexError, ValueError) as e:
            err(f"format.{k}", f"bad template ({e}); only {{conversation}} and {{request}} are filled")
    return Constitution(principles, list(comp), dict(fmt), source)


def load_constitution(path: str | Path) -> Constitution:
    """Read a YAML/JSON constitution file."""
    p = Path(path)
    if not p.exists():
        raise ConstitutionError(f"{p}: constitution file not found")
    text = p.read_text()
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 — any parse error becomes one clear message
        raise ConstitutionError(f"{p}: cannot parse: {e}") from None
    return parse_constitution(data, str(p))
