"""Offscreen OpenGL for MuJoCo's renderer (eval-policy --video): which backend works on this machine."""

from __future__ import annotations

from .errors import UserError

GL_HINTS = {"egl": "apt-get install libegl1 libgl1-mesa-dri (EGL, GPU or Mesa's software driver)",
            "osmesa": "apt-get install libosmesa6 (OSMesa, software)"}


def probe_gl(backend: str, timeout: float = 60.0) -> str | None:
    """Whether MuJoCo can open an offscreen OpenGL context with MUJOCO_GL=backend: None if it can, else the
    error's last line. In a subprocess: a failed GL start can leave a process unusable."""
    import os
    import subprocess
    import sys

    code = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timed out"
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {r.returncode}"


def ensure_headless_gl() -> str:
    """Pick MuJoCo's offscreen renderer for this process: MUJOCO_GL if set, the display's GLFW if there is
    one, else the first of EGL and OSMesa that works; one line naming the packages when none does."""
    import os

    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return "glfw"
    errors = {}
    for backend in ("egl", "osmesa"):
        err = probe_gl(backend)
        if err is None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        errors[backend] = err
    raise UserError("no offscreen OpenGL for MuJoCo's renderer (no display; EGL: " + errors["egl"] + "; OSMesa: "
                    + errors["osmesa"] + "): " + " or ".join(GL_HINTS.values()) + ", or set MUJOCO_GL")
