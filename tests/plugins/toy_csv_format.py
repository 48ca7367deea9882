"""A dataset format as a third-party package would write it, in one file: transitions as CSV rows (columns
o0..o{n-1}, a0..a{m-1}, r, n0..n{n-1}, terminal, timeout), with its own key `data.csv_delimiter` (a key of the
config's `data:` section). It reads (`data info`, `fit-model`, `train-off`, ...) and writes (`collect --format
toy-csv`). Registered through the `admpo.formats` entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from admpo_cli.extend import D4RL_REF, FormatSpec, Transitions, UserError


@dataclass(frozen=True)
class CsvSettings:
    csv_delimiter: str = ","

    def __post_init__(self):
        if len(self.csv_delimiter) != 1:
            raise ValueError(f"data.csv_delimiter: expected one character, got {self.csv_delimiter!r}")


def load(source: str, data, settings: CsvSettings, context) -> tuple[Transitions, None, str]:
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{path}: no such CSV file")
    with path.open() as fh:
        header = fh.readline().strip().split(settings.csv_delimiter)
    table = np.loadtxt(path, delimiter=settings.csv_delimiter, skiprows=1, dtype=np.float32, ndmin=2)
    col = {name: i for i, name in enumerate(header)}
    pick = lambda prefix: table[:, [i for n, i in col.items() if n[0] == prefix and n[1:].isdigit()]]  # noqa: E731
    out = Transitions(pick("o"), pick("a"), table[:, col["r"]], pick("n"), table[:, col["terminal"]] > 0,
                      table[:, col["timeout"]] > 0, source=str(path))
    return out, None, str(path)


def write(path: Path, data: Transitions, qpos=None, qvel=None, metadata=None) -> None:
    d, a = data.obs_dim, data.act_dim
    header = [f"o{i}" for i in range(d)] + [f"a{i}" for i in range(a)] + ["r"] + [f"n{i}" for i in range(d)]
    table = np.concatenate([data.observations, data.actions, data.rewards[:, None], data.next_observations,
                            data.terminals[:, None], data.timeouts[:, None]], 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, delimiter=",", header=",".join(header + ["terminal", "timeout"]), comments="",
               fmt="%.9g")


FORMAT = FormatSpec("toy-csv", load=load, reference=D4RL_REF.get, suffixes=(".csv",), settings=CsvSettings,
                    write=write, description="transitions as CSV rows (test plugin)")
