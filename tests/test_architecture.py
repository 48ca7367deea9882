"""The package's shape as the README's "Code layout" documents it: data flows one way through the layers
(a module imports only from lower layers, or from its own package), the same-layer imports between packages
are the ones named in the README, no package's modules import each other in a cycle, only the CLI prints,
and asking for help does not import torch. The checks read the layer table from the README itself, so the
picture and the code cannot drift apart; each check is shown to fail on a broken copy of the package."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "admpo_cli"
README = ROOT / "README.md"


def documented_layers(readme: Path = README) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """From the README's "Code layout" block: {package or foundation module: layer} from lines
    `L<n>  name/ name.py ...  — text`, and the allowed same-layer imports from `same layer: a -> b, c -> d`."""
    text = readme.read_text()
    block = text[text.index("## Code layout"):]
    block = block[: block.index("\n## ", 5)]
    layers: dict[str, int] = {}
    for level, names in re.findall(r"^L(\d)\s+(.*?)\s+—", block, re.M):
        for name in re.findall(r"([a-z_]+)(?:/|\.py)", names):
            layers[name] = int(level)
    allowed = set(re.findall(r"([a-z_]+) -> ([a-z_]+)", block[block.index("same layer:"):].splitlines()[0]))
    return layers, allowed


def _package_of(path: Path, root: Path = PKG) -> str:
    rel = path.relative_to(root)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _module_of(path: Path, root: Path = PKG) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imported_modules(path: Path, root: Path = PKG) -> list[tuple[int, str]]:
    """(line, module inside admpo_cli, dotted from the package root) of every admpo_cli import, at any depth;
    `from .x import name` counts name when it is a module."""
    tree = ast.parse(path.read_text())
    here = list(path.relative_to(root).parent.parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "admpo_cli":
                target = node.module.split(".")[1:]
            else:
                continue
            for a in node.names:
                sub = target + [a.name]
                is_module = (root.joinpath(*sub).with_suffix(".py")).exists() or (root.joinpath(*sub)).is_dir()
                out.append((node.lineno, ".".join(sub if is_module else target)))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".", 1)[1]) for a in node.names if a.name.startswith("admpo_cli.")]
    return [(line, mod) for line, mod in out if mod]


def layer_violations(root: Path = PKG, readme: Path = README) -> list[str]:
    layers, allowed = documented_layers(readme)
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = _package_of(path, root)
        if own == "__init__":
            continue
        if own not in layers:
            bad.append(f"{path.relative_to(root)}: not in the README's layer table")
            continue
        for line, mod in _imported_modules(path, root):
            target = mod.split(".")[0]
            if target == own or target == "__version__" or target == "__init__":
                continue
            if target not in layers:
                bad.append(f"{path.relative_to(root)}:{line} imports {target}, which is in no layer")
            elif layers[target] > layers[own]:
                bad.append(f"{path.relative_to(root)}:{line} imports {target} (layer {layers[target]} from "
                           f"{layers[own]}: upward)")
            elif layers[target] == layers[own] and layers[own] != 0 and (own, target) not in allowed:
                bad.append(f"{path.relative_to(root)}:{line} imports {target} (same layer {layers[own]}; not "
                           "named in the README's `same layer:` list)")
    return bad


def import_cycles(root: Path = PKG, readme: Path = README) -> list[list[str]]:
    """Cycles among the modules of one package (the foundation's modules count as one package)."""
    layers, _ = documented_layers(readme)

    def group(mod: str) -> str:
        top = mod.split(".")[0]
        return "foundation" if layers.get(top) == 0 else top

    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        mod = _module_of(path, root)
        if not mod:
            continue
        graph.setdefault(mod, set())
        for _, target in _imported_modules(path, root):
            if target != mod and group(target) == group(mod) and not mod.startswith(target + "."):
                graph[mod].add(target)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_readme_documents_every_package():
    layers, allowed = documented_layers()
    on_disk = {_package_of(p) for p in PKG.rglob("*.py")} - {"__init__"}
    assert on_disk - set(layers) == set(), "packages or modules missing from the README's layer table"
    assert set(layers) - on_disk == set(), "the README's layer table names what does not exist"
    assert all(layers[a] == layers[b] for a, b in allowed)


def test_no_module_imports_upward_or_sideways():
    assert layer_violations() == []


def test_no_import_cycles_inside_a_package():
    assert import_cycles() == []


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "admpo_cli"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return copy


def test_the_checks_catch_an_upward_a_sideways_import_and_a_cycle(tmp_path):
    copy = _copy(tmp_path)
    rollout = copy / "models" / "rollout.py"
    rollout.write_text(rollout.read_text() + "\nfrom ..algos import offline  # noqa\nfrom ..agents import bc  # noqa\n")
    bad = layer_violations(copy)
    assert len(bad) == 2 and "imports algos" in bad[0] and "upward" in bad[0], bad
    assert "imports agents" in bad[1] and "same layer" in bad[1], bad
    rng = copy / "algos" / "rng.py"
    rng.write_text(rng.read_text() + "\nfrom . import training_run  # noqa\n")  # training_run imports rng
    assert any(set(c) >= {"algos.rng", "algos.training_run"} for c in import_cycles(copy))
    assert import_cycles() == []


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


def test_the_cli_calls_stages_not_the_layers_below():
    """A command parses, calls one stage and renders: cli/ imports stages, sweep and the foundation only."""
    layers, _ = documented_layers()
    bad = []
    for path in sorted((PKG / "cli").rglob("*.py")):
        for line, mod in _imported_modules(path):
            top = mod.split(".")[0]
            if top not in ("cli", "stages", "sweep", "__version__") and layers.get(top) != 0:
                bad.append(f"{path.relative_to(PKG)}:{line} imports {mod}")
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


def test_no_function_in_algos_is_over_80_lines():
    """The loops read as the paper's algorithms: long functions are split into named steps."""
    long = []
    for path in sorted((PKG / "algos").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


# The plain one-screen references that the tests hold the fast paths to may run a little longer.
LONG_ALLOWED = {"algos/reference_offline.py:train_offline_reference"}


def test_no_function_in_src_is_over_60_lines():
    import ast

    long = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{path.relative_to(PKG).as_posix()}:{node.name}"
                if node.end_lineno - node.lineno + 1 > 60 and name not in LONG_ALLOWED:
                    long.append(f"{name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
