"""`alignstack label import/export/user/init` through alignstack.label.cli.main: clean errors, exit 2."""
import json

from alignstack.data.formats import validate_row
from alignstack.label.cli import main


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()


def test_wrong_k_names_file_row_and_field(tmp_path, capsys, jsonl):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    f = jsonl(tmp_path / "three.jsonl", [{"prompt": "p", "completions": ["a", "b"]},
                                         {"prompt": "q", "completions": ["a", "b", "c"]}])
    assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", str(f)]) == 2
    err = _err(capsys)
    assert err.startswith("error: ") and "three.jsonl, row 2, field 'completions'" in err and "exactly 2" in err
    f2 = jsonl(tmp_path / "two.jsonl", [{"prompt": "p", "completions": ["a", "b"]}])
    assert main(["import", "--db", db, "--project", "y", "--kind", "ranking", str(f2)]) == 2
    assert "two.jsonl, row 1, field 'completions'" in _err(capsys)
    f10 = jsonl(tmp_path / "ten.jsonl", [{"prompt": "p", "completions": [str(i) for i in range(10)]}])
    assert main(["import", "--db", db, "--project", "y", "--kind", "ranking", str(f10)]) == 2
    assert "3..9" in _err(capsys)


def test_malformed_json_line(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "p", "completions": ["a", "b"]}\n\n{"prompt": "p", "completions": [\n')
    assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", str(f)]) == 2
    err = _err(capsys)
    assert "bad.jsonl, row 3" in err and "malformed JSON" in err


def test_schema_errors_come_from_validate_row(tmp_path, capsys, jsonl):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    cases = [({"completions": ["a", "b"]}, "field 'prompt'"),
             ({"prompt": [{"role": "assistant", "content": "hi"}], "completions": ["a", "b"]}, "must be a user"),
             ({"prompt": "p", "completions": ["a", ""]}, "field 'completions[1]'"),
             ({"prompt": "p", "completions": ["a", "b"], "meta": 3}, "field 'meta'")]
    for row, needle in cases:
        f = jsonl(tmp_path / "c.jsonl", [row])
        assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", str(f)]) == 2
        err = _err(capsys)
        assert "c.jsonl, row 1" in err and needle in err, err


def test_failed_import_writes_nothing(tmp_path, capsys, jsonl):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    f = jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "completions": ["a", "b"]}] * 5 + [{"prompt": "p"}])
    assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", str(f)]) == 2
    capsys.readouterr()
    assert main(["export", "--db", db, "--project", "x", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "no project named 'x'" in _err(capsys)


def test_usage_errors_and_users(tmp_path, capsys, jsonl):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    assert main(["import", "--db", db, "--project", "x", "--kind", "triplet", "f.jsonl"]) == 2
    assert "invalid choice" in _err(capsys)
    assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in _err(capsys)
    assert main(["init", "--db", db]) == 0
    assert main(["user", "add", "bob", "--db", db, "--password", "pw", "--projects", "nope"]) == 2
    assert "no project named 'nope'" in _err(capsys)
    f = jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "completions": ["a", "b"]}])
    assert main(["import", "--db", db, "--project", "x", "--kind", "pairwise", "--instructions", "Be careful.", str(f)]) == 0
    assert main(["user", "add", "bob", "--db", db, "--password", "pw", "--projects", "x"]) == 0
    assert main(["user", "add", "eve", "--db", db, "--password", "pw", "--role", "root"]) == 2
    capsys.readouterr()
    assert main(["user", "list", "--db", db]) == 0
    assert "bob\tannotator\tx" in capsys.readouterr().out


def test_cli_export_roundtrip(tmp_path, capsys, jsonl):
    import uuid

    from sqlalchemy import select

    from alignstack.label import leases
    from alignstack.label.db import Project, User, open_db
    from alignstack.label.labels import submit

    db = f"sqlite:///{tmp_path / 'l.db'}"
    f = jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "completions": ["a", "b", "c"], "meta": {"k": 1}}])
    assert main(["import", "--db", db, "--project", "r", "--kind", "ranking", str(f)]) == 0
    assert main(["user", "add", "ann", "--db", db, "--password", "pw", "--projects", "r"]) == 0
    _, S = open_db(db)
    with S.begin() as s:
        uid = s.scalar(select(User.id).where(User.name == "ann"))
        tid = leases.acquire_next(s, s.scalar(select(Project)), uid).id
    submit(S, uid, {"task_id": tid, "idempotency_key": str(uuid.uuid4()), "ranking": [2, 0, 1]})
    out = tmp_path / "o.jsonl"
    assert main(["export", "--db", db, "--project", "r", "--out", str(out), "--aggregate", "majority"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["ranking"] == [2, 0, 1] and rows[0]["meta"]["k"] == 1
    validate_row("ranking", rows[0])
