"""The shape the code keeps (issue 35): no module over 400 lines, and protect/ and engines/
never import each other (they share segue_cli.job and segue_cli.photo instead)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def modules() -> list[Path]:
    return [p for folder in ("segue_cli", "research", "benchmarks", "tools") for p in sorted((ROOT / folder).rglob("*.py"))]


def imported(path: Path) -> set[str]:
    """The modules a file imports, as absolute names (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_protect_and_engines_do_not_import_each_other():
    for source, other in (("protect", "engines"), ("engines", "protect")):
        for path in sorted((ROOT / "segue_cli" / source).glob("*.py")):
            crossing = {name for name in imported(path) if name == f"segue_cli.{other}" or name.startswith(f"segue_cli.{other}.")}
            assert crossing == set(), f"{path.relative_to(ROOT)} imports {crossing}"


def test_the_import_check_sees_relative_imports():
    engines_local = ROOT / "segue_cli" / "engines" / "local.py"
    assert "segue_cli.photo.compose" in imported(engines_local) and "segue_cli.job" in imported(engines_local)
