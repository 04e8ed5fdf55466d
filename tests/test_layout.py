"""The shape the code keeps (issue 35): no module over 400 lines, and protect/ and engines/
never import each other (they share segue_cli.protect.job and segue_cli.photo instead)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_protect_and_engines_import_one_way():
    allowed = {"protect": {"segue_cli.engines", "segue_cli.engines.ENGINES", "segue_cli.engines.ENGINE_CHOICES"},
               "engines": {"segue_cli.protect.job"}}
    for source, other in (("protect", "engines"), ("engines", "protect")):
        for path in sorted((ROOT / "segue_cli" / source).glob("*.py")):
            crossing = {name for name in imported(path) if name == f"segue_cli.{other}" or name.startswith(f"segue_cli.{other}.")}
            crossing = {name for name in crossing if name not in allowed[source]
                        and not (source == "engines" and name.startswith("segue_cli.protect.job."))}
            assert crossing == set(), f"{path.relative_to(ROOT)} imports {crossing}"
    job = ROOT / "segue_cli" / "protect" / "job.py"
    assert not {name for name in runtime_imports(job) if name.startswith(("segue_cli.protect", "segue_cli.engines"))}


def test_the_import_check_sees_relative_imports():
    engines_local = ROOT / "segue_cli" / "engines" / "local.py"
    assert "segue_cli.photo.compose" in imported(engines_local) and "segue_cli.protect.job" in imported(engines_local)


def test_the_package_root_holds_at_most_12_modules():
    assert len(sorted((ROOT / "segue_cli").glob("*.py"))) <= 12


def package_modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "segue_cli").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def runtime_imports(path: Path, known: dict[str, Path] | None = None) -> set[str]:
    """The modules a file imports when it runs, at load or inside a function (``if
    TYPE_CHECKING:`` blocks left out: they never run), as absolute names. With ``known``
    modules, ``from . import journal`` names the module journal, not the package."""
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", None)) == "TYPE_CHECKING":
                for kept in child.orelse:
                    visit(kept)
                continue
            if isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1] if child.level else []
                module = ".".join([*base, child.module] if child.module else base)
                for alias in child.names:
                    full = f"{module}.{alias.name}"
                    names.update({full} if known is not None and full in known else {module, full})
            elif isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def test_no_import_circle():
    """Runtime imports only, lazy ones included. The package root is no node: its lazy
    exports (Protector, CloakConfig) are the public API's doors, not a dependency of any
    module, and every module may read its ``__version__``."""
    modules = package_modules()
    graph = {name: {target for target in runtime_imports(path, modules) if target in modules and target not in (name, "segue_cli")}
             for name, path in modules.items() if name != "segue_cli"}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            assert state.get(target) != 1, "import circle: " + " -> ".join([*path[path.index(target):], target])
            if target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


def test_the_circle_check_sees_a_lazy_import(tmp_path):
    module = tmp_path / "segue_cli" / "a.py"
    module.parent.mkdir()
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
                      "def f():\n    from .c import C\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert runtime_imports(module) >= {"segue_cli.c", "segue_cli.c.C"} and "segue_cli.b" not in runtime_imports(module)
    finally:
        ROOT = saved


#: Every registry (issue 42 item 7): module -> the dict it holds, name -> spec.
REGISTRIES = {"segue_cli.choices": "OUTPUT_FORMATS", "segue_cli.backends": "BACKENDS", "segue_cli.engines": "ENGINES",
              "segue_cli.faces": "DETECTORS", "segue_cli.faces.networks": "FACE_NETWORKS", "segue_cli.nn": "ATTACKERS",
              "segue_cli.train": "OBJECTIVES", "segue_cli.evaluation.countermeasures": "COUNTERMEASURES"}
HEAVY = ("torch", "torchvision", "onnxruntime", "cv2", "dlib")


@pytest.mark.parametrize("module", sorted(REGISTRIES))
def test_a_registry_module_imports_nothing_heavy(module):
    probe = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == [], f"importing {module} loads {done.stdout.split()}"


@pytest.mark.parametrize("module", sorted(REGISTRIES))
def test_every_registry_has_one_shape(module):
    """A plain dict, name -> a frozen Spec with its name, one line of help, and a factory that
    names an attribute that exists (an output format has none: imageio writes them all)."""
    from segue_cli.choices import Spec

    registry = getattr(importlib.import_module(module), REGISTRIES[module])
    assert type(registry) is dict and registry
    for name, spec in registry.items():
        assert isinstance(spec, Spec) and spec.name == name and spec.help and "\n" not in spec.help
        if module == "segue_cli.choices":
            assert spec.factory == ""
            continue
        target, _, attribute = spec.factory.partition(":")
        try:
            found = importlib.import_module(target)
        except ModuleNotFoundError as exc:  # an extra this install leaves out (torch, ...)
            pytest.skip(f"{spec.factory}: {exc.name} is not installed")
        assert hasattr(found, attribute), spec.factory
