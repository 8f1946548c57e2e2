"""The maths layer (alignstack/losses, alignstack/algos) imports only torch, the standard
library and itself — checked by parsing every module's imports with ``ast``."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "alignstack"
PACKAGES = ("losses", "algos")
ALLOWED_PREFIXES = ("alignstack.losses", "alignstack.algos")
MODULES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py"))


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: stays inside the package
                pkg = path.parent.name
                names.append(f"alignstack.{pkg}.{node.module or ''}".rstrip("."))
            else:
                names.append(node.module)
    return names


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    if top == "torch" or top == "__future__" or top in sys.stdlib_module_names:
        return True
    return any(name == p or name.startswith(p + ".") for p in ALLOWED_PREFIXES)


def test_modules_found():
    names = {p.stem for p in MODULES}
    assert {"reduce", "preference", "policy", "hir", "advantages", "kl", "rewards", "selection"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_only_torch_stdlib_and_maths_layer(path):
    bad = [n for n in _imported_modules(path) if not _allowed(n)]
    assert not bad, f"{path} imports {bad}"


def test_checker_rejects_foreign_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import numpy as np\nfrom trl.trainer import utils\nfrom alignstack.models import x\nimport math\n"
    )
    bad = [n for n in _imported_modules(f) if not _allowed(n)]
    assert bad == ["numpy", "trl.trainer", "alignstack.models"]
