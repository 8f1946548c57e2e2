"""Reading and writing rows: JSONL, JSON, Parquet, or a `datasets` folder (``save_to_disk``).

Every failure is a :class:`~alignstack.data.formats.DataError` naming the file and, for JSONL,
the 1-based line; rows are validated against a row kind when one is given. Text is decoded as
strict UTF-8 here, never by ``open()``, so a stray Latin-1 byte is reported as one line naming
file, row and byte offset instead of a ``UnicodeDecodeError`` traceback from deep in a trainer.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from alignstack.data.formats import DataError, validate_row

NEWLINE = b"\n"


def decode_utf8(data: bytes, file: str, *, row: int | None = None, offset: int = 0) -> str:
    """``data`` decoded as UTF-8, or a DataError naming ``file``, the row (or, for a whole file, the
    line) and the absolute byte offset of the first bad byte (``offset``: where ``data`` starts in
    the file)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        # a whole-file read (a JSON array) has no rows yet: name the line instead
        line = "" if row is not None else f" (line {data.count(NEWLINE, 0, e.start) + 1})"
        bad = data[e.start:e.start + 1].hex()
        raise DataError(f"not valid UTF-8: byte 0x{bad} at byte offset {offset + e.start}{line}, {e.reason}; "
                        "re-save the file as UTF-8", file=file, row=row) from None


def read_text(path: str | os.PathLike) -> str:
    """A whole text file as strict UTF-8 (see :func:`decode_utf8`)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", file=str(p)) from None
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", file=str(p)) from None
    return decode_utf8(data, str(p))


def _loads(text: str, file: str, row: int | None):
    """json.loads with one-line errors; JSON nested past Python's recursion limit is refused the
    same way instead of raising RecursionError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f" at column {e.colno}" if row is not None else f" (line {e.lineno}, column {e.colno})"
        raise DataError(f"malformed JSON: {e.msg}{where}", file=file, row=row) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", file=file, row=row) from None


def read_rows(path: str | os.PathLike, kind: str | None = None, limit: int | None = None) -> list[dict]:
    p = Path(path)
    if not p.exists():
        raise DataError("file not found (expected .jsonl, .json, .parquet or a datasets folder)", file=str(p))
    if p.is_dir():
        rows = _read_datasets_dir(p)
    elif p.suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(p, limit)
    elif p.suffix == ".json":
        data = _loads(read_text(p), str(p), None)
        if not isinstance(data, list):
            raise DataError("expected a JSON array of row objects", file=str(p))
        rows = data
    elif p.suffix == ".parquet":
        rows = _read_parquet(p)
    else:
        raise DataError(f"unsupported file type {p.suffix!r}; expected .jsonl, .json, .parquet or a datasets folder",
                        file=str(p))
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise DataError("no rows", file=str(p))
    if kind is not None:
        rows = [validate_row(kind, r, file=str(p), row_number=i + 1) for i, r in enumerate(rows)]
    return rows


def _read_jsonl(p: Path, limit: int | None) -> list[dict]:
    rows, offset = [], 0
    with p.open("rb") as f:
        for i, raw in enumerate(f, 1):
            line = decode_utf8(raw, str(p), row=i, offset=offset)
            offset += len(raw)
            if not line.strip():
                continue
            rows.append(_loads(line, str(p), i))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _read_parquet(p: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with `datasets`
        raise DataError("reading Parquet needs pyarrow (pip install pyarrow)", file=str(p)) from None
    try:
        return pq.read_table(str(p)).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for broken files
        raise DataError(f"unreadable Parquet file: {e}", file=str(p)) from None


def _read_datasets_dir(p: Path) -> list[dict]:
    try:
        from datasets import load_from_disk
        ds = load_from_disk(str(p))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"not a `datasets` folder saved with save_to_disk: {e}", file=str(p)) from None
    if hasattr(ds, "keys"):  # DatasetDict: take 'train'
        if "train" not in ds:
            raise DataError(f"DatasetDict without a 'train' split (has {list(ds.keys())})", file=str(p))
        ds = ds["train"]
    return [dict(r) for r in ds]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows atomically (temporary file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, p)
    return p
