"""The package's shape: data flows one way (cli -> stages -> algos -> models / agents / data / envs ->
config / rundir / runtime), only the CLI prints, and asking for help does not import torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "admpo_cli"

# Lower rank = lower layer. A module may import a module of a lower rank, or of its own package; sibling
# packages of one rank do not import each other (models and agents share the optimiser from below).
RANKS = {
    "errors": 0, "algorithms": 0, "config": 0, "rundir": 0, "runtime": 0, "optim": 0, "kernels": 0, "events": 0,
    "envs": 1,
    "data": 2,
    "models": 3, "agents": 3,
    "evaluate": 4,
    "algos": 5,
    "stages": 6, "report": 6,
    "sweep": 7,
    "cli": 8,
}
BOTTOM = 0  # the foundation's modules may use each other


def _package_of(path: Path, root: Path = PKG) -> str:
    rel = path.relative_to(root)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path, root: Path = PKG) -> list[tuple[int, str]]:
    """(line, top-level admpo_cli package) of every admpo_cli import in a file, at any depth."""
    tree = ast.parse(path.read_text())
    package = list(path.relative_to(root.parent).parent.parts)  # the package a relative import starts from
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "admpo_cli":
                target = node.module.split(".")
            else:
                continue
            names = [target[1]] if len(target) > 1 else [a.name for a in node.names]
            out += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("admpo_cli.")]
    return out


def upward_imports(root: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = _package_of(path, root)
        if own == "__init__" or own not in RANKS:
            if own not in ("__init__",):
                bad.append(f"{path.relative_to(root)}: module not placed in a layer (add it to RANKS)")
            continue
        for line, target in _imports(path, root):
            if target == own or target == "__version__" or target not in RANKS:
                continue
            r_own, r_target = RANKS[own], RANKS[target]
            if r_target > r_own or (r_target == r_own and r_own != BOTTOM):
                bad.append(f"{path.relative_to(root)}:{line} imports {target} (layer {r_target} from {r_own})")
    return bad


def test_no_module_imports_upward():
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path):
    import shutil

    copy = tmp_path / "admpo_cli"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    target = copy / "models" / "rollout.py"
    target.write_text(target.read_text() + "\nfrom ..algos import offline  # noqa\n")
    bad = upward_imports(copy)
    assert len(bad) == 1 and "models/rollout.py" in bad[0] and "imports algos" in bad[0]


def test_no_module_below_the_cli_prints():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if _package_of(path) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name in ("print", "Console") or (name == "write" and "stderr" in ast.unparse(fn)):
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno}: {ast.unparse(node)[:60]}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if mod and (mod == "rich" or mod.startswith("rich.") or mod.endswith("ui")):
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno}: imports {mod}")
    assert bad == []


@pytest.mark.parametrize("args", [["--help"], ["presets", "list"], ["presets", "show", "hopper-medium"],
                                  ["train-off", "--help"], ["report", "--help"]])
def test_asking_for_help_does_not_import_torch(args):
    """The deterministic part of a fast `--help`: torch (about a second to import) is never loaded. How long it
    takes is measured in benchmarks/bench_cli.py, not asserted here (a wall-clock limit flakes under load)."""
    code = ("import sys; from admpo_cli.cli import main; sys.argv = ['admpo'] + "
            f"{args!r}\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "NO-TORCH", r.stderr
