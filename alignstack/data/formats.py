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

``P`` is a string (one user turn) or a list of messages ending with a user (or tool) turn (TRL's
conversational form). ``R`` is a string or a list holding one assistant message.
Strength labels are Llama 2's four buckets (see ``STRENGTHS``).

Public formats are read as they are published and converted to the kinds above (``FORMATS``):

- preference: TRL's explicit-prompt rows (strings or conversational); Anthropic-HH transcripts
  (``chosen``/``rejected`` full ``"\n\nHuman: ...\n\nAssistant: ..."`` strings, no ``prompt``: the
  shared turns become the prompt); chosen/rejected message lists that repeat the prompt
  (UltraFeedback, TRL's implicit-prompt conversational rows).
- messages: OpenAI ``messages`` with ``system`` and ``tool`` turns (assistant ``tool_calls`` kept;
  text-part lists joined); ShareGPT ``conversations`` (``from``/``value``, human/gpt/system).
- unpaired: TRL's KTO rows, with an explicit prompt or an implicit one (``completion`` as messages).

Kind aliases (``KIND_ALIASES``) name the public formats: ``data.kind=sharegpt`` reads ShareGPT rows.
Exports meant for TRL use :func:`conversational`: prompt, chosen and rejected all as messages.

Every problem raises :class:`DataError` naming the file, the 1-based row, the field, and what
was expected; nothing is silently dropped here (length policies live in the renderer).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")
ROLES = ("system", "user", "assistant", "tool")
KINDS = ("text", "messages", "completion", "preference", "ranking", "unpaired", "prompt", "samples")
KIND_ALIASES = {"sharegpt": "messages", "openai": "messages", "conversations": "messages",
                "hh": "preference", "ultrafeedback": "preference", "pairs": "preference", "kto": "unpaired"}
# per kind, the public shapes a row may have (named in the error when a row fits none of them)
FORMATS = {
    "text": ("text",),
    "messages": ("messages (OpenAI, incl. system/tool turns)", "conversations (ShareGPT from/value)"),
    "completion": ("prompt/completion",),
    "preference": ("prompt/chosen/rejected (strings or TRL conversational)",
                   "chosen/rejected HH transcripts ('\\n\\nHuman: ... \\n\\nAssistant: ...')",
                   "chosen/rejected message lists (UltraFeedback, TRL implicit prompt)"),
    "ranking": ("prompt/responses/ranking",),
    "unpaired": ("prompt/completion/label (TRL KTO)", "completion messages/label (TRL KTO, implicit prompt)"),
    "prompt": ("prompt",),
    "samples": ("prompt/completions",),
}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "tool": "tool", "function": "tool", "observation": "tool"}
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


def _content(m: Mapping, f: str, ctx: dict) -> str:
    """A message's text. OpenAI content-part lists are joined; an assistant turn that only calls
    tools (content null or empty) is allowed, as in OpenAI's format."""
    if "content" not in m:
        raise DataError("missing 'content'", field=f, **ctx)
    c = m["content"]
    if isinstance(c, list):
        if not all(isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in c):
            raise DataError("only text content parts ({type: text, text}) are supported", field=f + ".content", **ctx)
        c = "".join(p["text"] for p in c)
    if m.get("tool_calls") and (c is None or c == ""):
        return ""
    return _check_text(c, f + ".content", ctx)


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
        msg = {"role": m["role"], "content": _content(m, f, ctx)}
        tc = m.get("tool_calls")
        if tc is not None:
            if m["role"] != "assistant" or not isinstance(tc, list):
                raise DataError("tool_calls must be a list on an assistant turn", field=f + ".tool_calls", **ctx)
            msg["tool_calls"] = tc
        for k in ("tool_call_id", "name"):
            if m.get(k) is not None:
                msg[k] = m[k]
        out.append(msg)
    return out


def normalize_prompt(v: Any, field: str = "prompt", ctx: dict | None = None) -> list[dict]:
    """A prompt as a list of messages ending with a user turn."""
    ctx = ctx or {}
    if isinstance(v, str):
        return [{"role": "user", "content": _check_text(v, field, ctx)}]
    msgs = _check_messages(v, field, ctx)
    if msgs[-1]["role"] not in ("user", "tool"):
        raise DataError(f"the last message of a prompt must be a user (or tool) turn, got {msgs[-1]['role']!r}",
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


# --------------------------------------------------------------------------- public formats


def canonical_kind(kind: str, file: str | None = None) -> str:
    """A row kind or an alias of one (``sharegpt`` → ``messages``); an unknown kind is named."""
    if kind in KINDS:
        return kind
    if kind in KIND_ALIASES:
        return KIND_ALIASES[kind]
    raise DataError(f"unknown data.kind {kind!r}; expected one of {', '.join(KINDS)} "
                    f"(or an alias: {', '.join(f'{a}={k}' for a, k in KIND_ALIASES.items())})", file=file)


def _fits(kind: str, row: Mapping) -> bool:
    """Whether a row has the keys of one of ``kind``'s public shapes (field values are checked later)."""
    has = row.keys()
    return {
        "text": "text" in has,
        "messages": "messages" in has or "conversations" in has,
        "completion": "completion" in has and "prompt" in has,
        "preference": "chosen" in has and "rejected" in has,
        "ranking": "responses" in has,
        "unpaired": "completion" in has and "label" in has,
        "prompt": "prompt" in has,
        "samples": "completions" in has,
    }[kind]


# the fields that mark a row as meant to be of a kind (a row with none of them fits no format of it)
_KEY_FIELDS = {"text": {"text"}, "messages": {"messages", "conversations"}, "completion": {"completion"},
               "preference": {"chosen", "rejected"}, "ranking": {"responses", "ranking"},
               "unpaired": {"completion", "label"}, "prompt": {"prompt"}, "samples": {"completions"}}


def detect_kind(row: Any, candidates: tuple[str, ...], *, file: str | None = None, row_number: int = 1) -> str:
    """The first of ``candidates`` whose public shapes ``row`` fits, else an error listing them all."""
    if isinstance(row, Mapping):
        for k in candidates:
            if _fits(k, row):
                return k
    tried = "; ".join(f for k in candidates for f in FORMATS[k])
    has = sorted(row) if isinstance(row, Mapping) else _type_name(row)
    raise DataError(f"row fits no known format (tried: {tried}); row has: {has}", file=file, row=row_number)


def resolve_kind(kind: str | None, first_row: Any, candidates: tuple[str, ...], *, file: str | None = None,
                 what: str = "rows") -> str:
    """``data.kind`` (alias resolved, checked against what the method reads) or, unset, detected
    from the first row."""
    if kind is None:
        return detect_kind(first_row, candidates, file=file)
    k = canonical_kind(kind, file=file)
    if k not in candidates:
        raise DataError(f"data.kind {kind!r} is not a kind of {what}; expected one of {', '.join(candidates)}",
                        file=file)
    return k


_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")


def parse_transcript(text: str, field: str, ctx: dict) -> list[dict]:
    """An Anthropic-HH transcript (``"\\n\\nHuman: q\\n\\nAssistant: a ..."``) as messages."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise DataError("expected an HH-style transcript starting with '\\n\\nHuman:' (or give a 'prompt' field)",
                        field=field, **ctx)
    return [{"role": "user" if who == "Human" else "assistant", "content": body}
            for who, body in zip(parts[1::2], parts[2::2])]


def split_shared_prompt(chosen: list, rejected: list, ctx: dict) -> tuple[list, Any, Any]:
    """(prompt, chosen reply, rejected reply) from two conversations that share every turn but the
    last assistant reply — HH transcripts, UltraFeedback and TRL's implicit-prompt rows."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    for name, conv in (("chosen", chosen), ("rejected", rejected)):
        rest = conv[n:]
        if len(rest) != 1 or not isinstance(rest[0], Mapping) or rest[0].get("role") != "assistant":
            raise DataError(f"chosen and rejected must share every turn but a final assistant reply; after "
                            f"{n} shared turns {name} has {len(rest)} more", field=name, **ctx)
    if n == 0:
        raise DataError("chosen and rejected share no prompt turns (give a 'prompt' field)", field="chosen", **ctx)
    return chosen[:n], chosen[n:], rejected[n:]


def _is_msg_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, Mapping) for m in v)


def _adapt(kind: str, row: Mapping, ctx: dict) -> Mapping:
    """``row`` in the canonical shape of ``kind`` when it comes in one of the public shapes."""
    if not _fits(kind, row):
        if not _KEY_FIELDS[kind] & row.keys():     # nothing of the kind: say which formats were tried
            detect_kind(row, (kind,), file=ctx.get("file"), row_number=ctx.get("row"))
        return row                                 # part of it: validation names the missing field
    if kind == "messages" and "messages" not in row:          # ShareGPT
        conv = row["conversations"]
        if not _is_msg_list(conv):
            raise DataError(f"expected a non-empty list of {{from, value}} turns, got {_type_name(conv)}",
                            field="conversations", **ctx)
        msgs = []
        for i, t in enumerate(conv):
            who = t.get("from")
            if who not in SHAREGPT_ROLES:
                raise DataError(f"unknown speaker {who!r}; expected one of {sorted(SHAREGPT_ROLES)}",
                                field=f"conversations[{i}].from", **ctx)
            if "value" not in t:
                raise DataError("missing 'value'", field=f"conversations[{i}]", **ctx)
            msgs.append({"role": SHAREGPT_ROLES[who], "content": t["value"]})
        out = {k: v for k, v in row.items() if k != "conversations"}
        return {**out, "messages": msgs}
    if kind == "preference":
        c, r = row["chosen"], row["rejected"]
        if "prompt" not in row and isinstance(c, str) and isinstance(r, str):       # HH transcripts
            c, r = parse_transcript(c, "chosen", ctx), parse_transcript(r, "rejected", ctx)
        elif not (_is_msg_list(c) and _is_msg_list(r)) or (len(c) == 1 and len(r) == 1 and "prompt" in row):
            return row                                         # explicit prompt, or a type error to report
        p, c, r = split_shared_prompt(c, r, ctx)                # UltraFeedback / TRL implicit prompt
        return {**row, "prompt": p, "chosen": c, "rejected": r}
    if kind == "unpaired" and "prompt" not in row:             # TRL KTO, implicit prompt
        comp = row["completion"]
        if not _is_msg_list(comp) or len(comp) < 2:
            raise DataError("without a 'prompt', completion must be a conversation ending with the assistant's "
                            "reply", field="completion", **ctx)
        return {**row, "prompt": comp[:-1], "completion": comp[-1:]}
    return row


def conversational(row: Mapping) -> dict:
    """A validated preference row in TRL's all-conversational shape: prompt as messages, chosen and
    rejected as lists of one assistant message (TRL refuses a conversational prompt with string
    replies). alignstack reads it back unchanged."""
    out = dict(row)
    out["prompt"] = normalize_prompt(row["prompt"])
    for k in ("chosen", "rejected"):
        v = row[k]
        out[k] = v if isinstance(v, list) else [{"role": "assistant", "content": v}]
    return out


def validate_row(kind: str, row: Any, *, file: str | None = None, row_number: int | None = None) -> dict:
    """Check one row of ``kind`` and return it in canonical form (prompts as messages,
    responses as strings). Unknown extra fields are kept untouched."""
    ctx = {"file": file, "row": row_number}
    kind = canonical_kind(kind, file=file)
    if not isinstance(row, Mapping):
        raise DataError(f"expected a JSON object, got {_type_name(row)}", **ctx)
    row = _adapt(kind, row, ctx)
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
