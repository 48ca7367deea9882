"""`admpo new-plugin`: a plugin package written from the template shipped with admpo (templates/plugin/): one
module per kind of extension, each with its registration and its own config keys, and their entry points."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write_text

MODULES = ("model", "algorithm", "penalty", "dataset_format")


def write_template(folder: Path, name: str) -> list[Path]:
    """FOLDER/pyproject.toml and FOLDER/src/NAME/{__init__, model, algorithm, penalty, dataset_format}.py, the
    registered names NAME-model, NAME-algo, NAME-penalty and NAME-format. Returns the files written."""
    if not name.isidentifier() or name.lower() != name:
        raise UserError(f"--name {name!r}: expected a lower-case Python identifier (e.g. my_admpo_ext)")
    if folder.exists():
        raise UserError(f"{folder}: already exists; name a new folder")
    source = resources.files("admpo_cli") / "templates" / "plugin"
    fill = {"{name}": name, "{dist}": name.replace("_", "-")}
    files = {folder / "pyproject.toml": "pyproject.toml.tmpl",
             **{folder / "src" / name / f"{m}.py": f"{m}.py.tmpl" for m in MODULES}}
    out = []
    for target, template in files.items():
        text = (source / template).read_text()
        for key, value in fill.items():
            text = text.replace(key, value)
        atomic_write_text(target, text)
        out.append(target)
    init = folder / "src" / name / "__init__.py"
    atomic_write_text(init, f'"""{name}: admpo extensions (admpo new-plugin)."""\n')
    return [*out, init]
