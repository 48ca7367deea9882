"""User-facing errors: the CLI prints them as one red line and exits 2."""


class UserError(Exception):
    """A mistake the user can fix (bad path, unknown preset, malformed file).

    The message must name the file/field and what was expected; the CLI shows it without a traceback.
    """


class DivergenceError(RuntimeError):
    """Training produced NaN/inf; the run stops with its last good checkpoint."""
