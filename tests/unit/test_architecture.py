"""Architecture of the package, checked by walking every module's imports with ``ast`` (imports inside
functions count too: a lazy import hides a circle, it does not remove it):

- no import circles anywhere in ``alignstack``;
- layers below the pipeline (methods, rollout, train, data, losses, algos, models) never import the world;
- the task seam (``alignstack.tasks``) imports neither the world nor any method.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOW_LAYERS = ("methods", "rollout", "train", "data", "losses", "algos", "models")


def import_graph(root: Path) -> dict[str, set[str]]:
    pkg = root / "alignstack"
    mods = {}
    for f in pkg.rglob("*.py"):
        rel = f.relative_to(root).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = m.split(".") if is_pkg else m.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                r = owner(t) if t.startswith("alignstack") else None
                # a submodule importing its own package's __init__ is not an edge of the graph we police
                if r and r != m and not (mods[r].name == "__init__.py" and m.startswith(r + ".")):
                    edges[m].add(r)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = n
        n += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = n
                    n += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_circles():
    assert circles(import_graph(ROOT)) == []


def test_layers_below_the_pipeline_never_import_the_world():
    edges = import_graph(ROOT)
    bad = sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                 if layer(m) in LOW_LAYERS and t.startswith("alignstack.world"))
    assert bad == []


def test_task_seam_imports_neither_world_nor_methods():
    edges = import_graph(ROOT)
    bad = sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts
                 if layer(m) == "tasks" and layer(t) in ("world", "methods"))
    assert bad == []


def test_checker_finds_a_circle_and_a_world_import(tmp_path):
    pkg = tmp_path / "alignstack"
    for sub in ("methods", "world"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "methods" / "a.py").write_text("def f():\n    from alignstack.methods import b\n")
    (pkg / "methods" / "b.py").write_text("from . import a\nfrom alignstack.world import w\n")
    (pkg / "world" / "w.py").write_text("")
    edges = import_graph(tmp_path)
    assert circles(edges) == [["alignstack.methods.a", "alignstack.methods.b"]]
    assert "alignstack.world.w" in edges["alignstack.methods.b"]
