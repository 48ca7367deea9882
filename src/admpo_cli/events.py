"""How long work reports to whoever called it, without printing: only the CLI prints.

- Progress: a stage takes a `Progress` and opens tasks on it (`with progress.task("fit adm", total=20) as
  t: t.update(advance=1, info="loss 0.3")`). The default does nothing; the CLI's draws Rich bars.
- Messages (a kernel build, a dropped row, a resumed run): the standard `logging` logger "admpo"; the
  CLI shows its records on stderr, a library user configures logging as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("admpo")


class Task:
    """One piece of work with a known or unknown total."""

    def update(self, completed: int | None = None, advance: int = 0, total: int | None = None,
               info: str = "") -> None:
        pass


class Progress:
    """Where stages report progress; this one ignores it (tests, library use)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield Task()


SILENT = Progress()
