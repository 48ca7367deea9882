"""`admpo data download`: the D4RL MuJoCo v2 and NeoRL files from their public addresses, into a folder the
loaders search. Partial downloads resume (HTTP Range), the size is checked against the server's, the
content against the layout its loader needs (neither benchmark publishes checksums; a table entry with a
sha256 is checked against it too), and the file appears under its name only when whole (atomic rename)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .d4rl import d4rl_filename, load_d4rl, search_dirs
from .neorl import load_neorl

D4RL_BASE = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/"
NEORL_BASE = "http://datasets.polixir.site/v2/"
D4RL_ENVS = ("hopper", "halfcheetah", "walker2d")
D4RL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
NEORL_TASKS = ("HalfCheetah", "Hopper", "Walker2d")
NEORL_LEVELS = ("low", "medium", "high")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    id: str
    benchmark: str  # d4rl | neorl
    path: str  # relative to the benchmark's base address
    filename: str
    sha256: str | None = None


def table() -> dict[str, Remote]:
    """Every downloadable file: the 15 D4RL MuJoCo v2 datasets and NeoRL's 9 (1000 training trajectories,
    what the benchmark and ADMPO use)."""
    out = {}
    for env in D4RL_ENVS:
        for level in D4RL_LEVELS:
            i = f"{env}-{level}-v2"
            out[i] = Remote(i, "d4rl", d4rl_filename(i), d4rl_filename(i))
    for task in NEORL_TASKS:
        for level in NEORL_LEVELS:
            name = f"{task}-v3-{level}-1000-train-noise.npz"
            out[f"{task}-v3-{level}"] = Remote(f"{task}-v3-{level}", "neorl", f"{task}-v3/{name}", name)
    return out


def resolve_ids(ids: list[str]) -> list[Remote]:
    """Ids (hopper-medium-v2, Hopper-v3-low), all-d4rl, all-neorl -> table entries; one line for an unknown id."""
    t = table()
    out: list[Remote] = []
    for i in ids:
        if i in ("all-d4rl", "all-neorl"):
            out += [r for r in t.values() if r.benchmark == i[4:]]
        elif i in t:
            out.append(t[i])
        else:
            raise UserError(f"data download: unknown dataset {i!r}; expected a D4RL id like hopper-medium-v2, a "
                            "NeoRL name like Hopper-v3-low, all-d4rl or all-neorl (admpo data download --list)")
    return list(dict.fromkeys(out))


def default_dir() -> Path:
    """Where the loaders look without --data-dir: $D4RL_DATASET_DIR, else ~/.d4rl/datasets."""
    return search_dirs("")[0]


def _validate(path: Path, remote: Remote) -> None:
    """The file must load as its benchmark's layout (UserError names what is wrong)."""
    if remote.sha256:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
        if h.hexdigest() != remote.sha256:
            raise UserError(f"{remote.id}: checksum mismatch (sha256 {h.hexdigest()[:16]}..., expected "
                            f"{remote.sha256[:16]}...)")
    if remote.benchmark == "d4rl":
        load_d4rl(path)
    else:
        load_neorl(path, trajectories=1)


def download(remote: Remote, folder: Path, base: str | None = None,
             progress: Callable[[int, int | None], None] | None = None, timeout: float = 30.0) -> Path:
    """Fetch one file into folder (resuming folder/<name>.part), check it, rename it into place. Returns the
    path; an existing complete file is kept as it is. progress(done_bytes, total_bytes or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / remote.filename
    if final.exists():
        return final
    base = base or (D4RL_BASE if remote.benchmark == "d4rl" else NEORL_BASE)
    url = base.rstrip("/") + "/" + remote.path
    part = folder / (remote.filename + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already whole
            resp = None
        else:
            raise UserError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"{url}: cannot reach the server ({reason}); offline? copy the file from a machine with "
                        f"internet into {folder}") from None
    if resp is not None:
        with resp:
            if have and resp.status != 206:  # the server ignored the range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with part.open("ab" if have else "wb") as f:
                done = have
                if progress:
                    progress(done, total)
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            if total is not None and part.stat().st_size != total:
                raise UserError(f"{url}: got {part.stat().st_size} of {total} bytes; run the command again to "
                                "resume")
    try:
        _validate(part, remote)
    except UserError as e:
        part.unlink(missing_ok=True)  # a corrupted file must not be resumed either
        raise UserError(f"{remote.id}: the downloaded file is not valid, removed ({e})") from None
    os.replace(part, final)
    return final
