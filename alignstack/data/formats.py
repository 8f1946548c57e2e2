"""Row schemas and validation for every data file alignstack reads or writes.

Row kinds (JSON objects, one per JSONL line / Parquet row / `datasets` row):

- ``text``        ``{"text": str}``                                         pretraining
- ``messages``    ``{"messages": [{"role": "user"|"assistant"|"system", "content": str}, ...]}``  SFT
- ``completion``  ``{"prompt": P, "completion": str}``                      SFT (prompt/completion)
- ``preference``  ``{"prompt": P, "chosen": R, "rejected": R,
                    "strength"?: str, "margin"?: float,
                    "chosen_safe"?: bool, "rejected_safe"?: bool, "annotator"?: str, "meta"?: dict}``
- ``ranking``     ``{"prompt": P, "responses": [R, ...] (2..9), "ranking": [int, ...] best first,
                    "safe"?: [bool, ...], "annotator"?: str, "meta"?: dict}``
- ``unpaired``    ``{"prompt": P, "completion": R, "label": bool}``          KTO
- ``prompt``      ``{"prompt": P, "is_safety"?: bool, "meta"?: dict}``       rollouts / eval
- ``samples``     ``{"prompt": P, "completions": [str, ...], "meta"?: dict}`` output of ``generate``

``P`` is a string (one user turn) or a list of messages ending with a user turn (TRL's
conversational form). ``R`` is a string or a list holding one assistant message.
Strength labels are Llama 2's four buckets (see ``STRENGTHS``).

Every problem raises :class:`DataError` naming the file, the 1-based row, the field, and what
was expected; nothing is silently dropped here (length policies live in the renderer).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")
ROLES = ("system", "user", "assistant")
KINDS = ("text", "messages", "completion", "preference", "ranking", "unpaired", "prompt", "samples")
MAX_RESPONSES = 9


class DataError(ValueError):
    """A data problem located by file, row and field."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None):
        self.file, self.row, self.field, self.detail = file, row, field, message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _check_text(v: Any, field: str, ctx: dict, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        raise DataError(f"expected a string, got {_type_name(v)}", field=field, **ctx)
    if not allow_empty and not v.strip():
        raise DataError("expected non-empty text, got an empty string", field=field, **ctx)
    return v


def _check_messages(v: Any, field: str, ctx: dict) -> list[dict]:
    if not isinstance(v, list) or not v:
        raise DataError(f"expected a non-empty list of messages, got {_type_name(v)}", field=field, **ctx)
    out = []
    for i, m in enumerate(v):
        f = f"{field}[{i}]"
        if not isinstance(m, Mapping):
            raise DataError(f"expected a message object {{role, content}}, got {_type_name(m)}", field=f, **ctx)
        if "role" not in m:
            raise DataError("missing 'role'", field=f, **ctx)
        if m["role"] not in ROLES:
            raise DataError(f"role must be one of {ROLES}, got {m['role']!r}", field=f + ".role", **ctx)
        if "content" not in m:
            raise DataError("missing 'content'", field=f, **ctx)
        out.append({"role": m["role"], "content": _check_text(m["content"], f + ".content", ctx)})
    return out


def normalize_prompt(v: Any, field: str = "prompt", ctx: dict | None = None) -> list[dict]:
    """A prompt as a list of messages ending with a user turn."""
    ctx = ctx or {}
    if isinstance(v, str):
        return [{"role": "user", "content": _check_text(v, field, ctx)}]
    msgs = _check_messages(v, field, ctx)
    if msgs[-1]["role"] != "user":
        raise DataError(f"the last message of a prompt must be a user turn, got {msgs[-1]['role']!r}",
                        field=field, **ctx)
    return msgs


def normalize_response(v: Any, field: str, ctx: dict | None = None) -> str:
    """A response as the assistant's text."""
    ctx = ctx or {}
    if isinstance(v, list):
        msgs = _check_messages(v, field, ctx)
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            raise DataError("expected a string or a list with exactly one assistant message", field=field, **ctx)
        return msgs[0]["content"]
    return _check_text(v, field, ctx)


def _require(row: Mapping, field: str, ctx: dict) -> Any:
    if field not in row:
        raise DataError(f"missing required field (row has: {sorted(row)})", field=field, **ctx)
    return row[field]


def _opt_bool(row: Mapping, field: str, ctx: dict) -> bool | None:
    v = row.get(field)
    if v is not None and not isinstance(v, bool):
        raise DataError(f"expected true/false, got {_type_name(v)}", field=field, **ctx)
    return v


def validate_row(kind: str, row: Any, *, file: str | None = None, row_number: int | None = None) -> dict:
    """Check one row of ``kind`` and return it in canonical form (prompts as messages,
    responses as strings). Unknown extra fields are kept untouched."""
    ctx = {"file": file, "row": row_number}
    if kind not in KINDS:
        raise ValueError(f"unknown row kind {kind!r}; expected one of {KINDS}")
    if not isinstance(row, Mapping):
        raise DataError(f"expected a JSON object, got {_type_name(row)}", **ctx)
    out = dict(row)
    if kind == "text":
        out["text"] = _check_text(_require(row, "text", ctx), "text", ctx)
    elif kind == "messages":
        msgs = _check_messages(_require(row, "messages", ctx), "messages", ctx)
        if not any(m["role"] == "assistant" for m in msgs):
            raise DataError("a conversation needs at least one assistant turn to train on", field="messages", **ctx)
        out["messages"] = msgs
    elif kind in ("completion", "unpaired"):
        out["prompt"] = normalize_prompt(_require(row, "prompt", ctx), "prompt", ctx)
        out["completion"] = normalize_response(_require(row, "completion", ctx), "completion", ctx)
        if kind == "unpaired":
            lab = _require(row, "label", ctx)
            if not isinstance(lab, bool):
                raise DataError(f"expected true (desirable) or false (undesirable), got {_type_name(lab)}",
                                field="label", **ctx)
    elif kind == "preference":
        out["prompt"] = normalize_prompt(_require(row, "prompt", ctx), "prompt", ctx)
        out["chosen"] = normalize_response(_require(row, "chosen", ctx), "chosen", ctx)
        out["rejected"] = normalize_response(_require(row, "rejected", ctx), "rejected", ctx)
        s = row.get("strength")
        if s is not None and s not in STRENGTHS:
            raise DataError(f"unknown strength {s!r}; expected one of {STRENGTHS}", field="strength", **ctx)
        m = row.get("margin")
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float))):
            raise DataError(f"expected a number, got {_type_name(m)}", field="margin", **ctx)
        _opt_bool(row, "chosen_safe", ctx)
        _opt_bool(row, "rejected_safe", ctx)
    elif kind == "ranking":
        out["prompt"] = normalize_prompt(_require(row, "prompt", ctx), "prompt", ctx)
        resp = _require(row, "responses", ctx)
        if not isinstance(resp, list) or not 2 <= len(resp) <= MAX_RESPONSES:
            raise DataError(f"expected a list of 2..{MAX_RESPONSES} responses, got "
                            f"{len(resp) if isinstance(resp, list) else _type_name(resp)}", field="responses", **ctx)
        out["responses"] = [normalize_response(r, f"responses[{i}]", ctx) for i, r in enumerate(resp)]
        rk = _require(row, "ranking", ctx)
        if not isinstance(rk, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in rk):
            raise DataError("expected a list of response indices, best first", field="ranking", **ctx)
        if len(rk) != len(resp):
            raise DataError(f"ranking has {len(rk)} entries but there are {len(resp)} responses (K mismatch)",
                            field="ranking", **ctx)
        if sorted(rk) != list(range(len(resp))):
            dup = sorted({i for i in rk if rk.count(i) > 1})
            raise DataError(f"ranking must be a permutation of 0..{len(resp) - 1}"
                            + (f"; duplicates: {dup}" if dup else f"; got {rk}"), field="ranking", **ctx)
        safe = row.get("safe")
        if safe is not None and (not isinstance(safe, list) or len(safe) != len(resp)
                                 or not all(isinstance(b, bool) for b in safe)):
            raise DataError(f"expected a list of {len(resp)} booleans", field="safe", **ctx)
    elif kind == "prompt":
        out["prompt"] = normalize_prompt(_require(row, "prompt", ctx), "prompt", ctx)
        _opt_bool(row, "is_safety", ctx)
    elif kind == "samples":
        out["prompt"] = normalize_prompt(_require(row, "prompt", ctx), "prompt", ctx)
        comps = _require(row, "completions", ctx)
        if not isinstance(comps, list) or not comps:
            raise DataError(f"expected a non-empty list of strings, got {_type_name(comps)}", field="completions", **ctx)
        out["completions"] = [_check_text(c, f"completions[{i}]", ctx, allow_empty=True) for i, c in enumerate(comps)]
    meta = row.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise DataError(f"expected an object, got {_type_name(meta)}", field="meta", **ctx)
    return out


def validate_rows(kind: str, rows: Iterable[Any], file: str | None = None) -> list[dict]:
    return [validate_row(kind, r, file=file, row_number=i + 1) for i, r in enumerate(rows)]


def ranking_to_pairs(row: Mapping) -> list[dict]:
    """All C(K,2) (chosen, rejected) preference rows implied by one validated ranking row."""
    order = row["ranking"]
    out = []
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            i, j = order[a], order[b]
            pair = {"prompt": row["prompt"], "chosen": row["responses"][i], "rejected": row["responses"][j]}
            if row.get("safe") is not None:
                pair["chosen_safe"], pair["rejected_safe"] = row["safe"][i], row["safe"][j]
            if row.get("annotator") is not None:
                pair["annotator"] = row["annotator"]
            out.append(pair)
    return out
