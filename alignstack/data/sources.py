"""Reading and writing rows: JSONL, JSON, Parquet, or a `datasets` folder (``save_to_disk``).

Every failure is a :class:`~alignstack.data.formats.DataError` naming the file and, for JSONL,
the 1-based line; rows are validated against a row kind when one is given.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from alignstack.data.formats import DataError, validate_row


def read_rows(path: str | os.PathLike, kind: str | None = None, limit: int | None = None) -> list[dict]:
    p = Path(path)
    if not p.exists():
        raise DataError("file not found (expected .jsonl, .json, .parquet or a datasets folder)", file=str(p))
    if p.is_dir():
        rows = _read_datasets_dir(p)
    elif p.suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(p, limit)
    elif p.suffix == ".json":
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})", file=str(p)) from None
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
    rows = []
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"malformed JSON line: {e.msg} at column {e.colno}", file=str(p), row=i) from None
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
