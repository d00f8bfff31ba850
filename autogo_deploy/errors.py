"""Exception types a user can cause, each with the CLI exit code it maps to.

Exit codes (see ARCHITECTURE.md): 0 ok, 1 budget violated (`check`), 2 bad input/usage,
3 environment (backend missing, device failed), 4 internal error, 5 inconclusive (`check`).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUDGET = 1
EXIT_INPUT = 2
EXIT_ENV = 3
EXIT_INTERNAL = 4
EXIT_INCONCLUSIVE = 5


class AutogoError(Exception):
    """Base of every error a user can cause; `exit_code` is what the CLI returns."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The single line shown to the user: what, why and what to do."""
        text = self.message.replace("\n", " ").strip()
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class InputError(AutogoError):
    """Bad model file, bad flags, bad arguments: exit 2."""

    exit_code = EXIT_INPUT


class ModelError(InputError):
    """The ONNX model cannot be read, validated or shape-inferred."""


class UnsupportedOpError(ModelError):
    """The model uses an operator this tool cannot handle."""


class DynamicShapeError(ModelError):
    """A dimension stays symbolic and was not pinned with --input-shape."""


class DatabaseError(InputError):
    """A segment database is corrupt, foreign or of another schema version."""


class EnvironmentError_(AutogoError):
    """A backend, package or device is missing or failed: exit 3."""

    exit_code = EXIT_ENV


class BackendUnavailable(EnvironmentError_):
    """The target's backend cannot run here (package missing, no GPU)."""


class MeasurementFailed(EnvironmentError_):
    """A profiler harness crashed, hung or printed no result."""


class ResolveRejected(AutogoError):
    """A mutant could not be made valid (MILP infeasible/timeout); never shown as a crash."""

    exit_code = EXIT_INTERNAL


def first_line(exc: BaseException) -> str:
    """The first non-empty line, at most 300 characters: its start and its end (onnxruntime puts
    a C++ signature first and the reason last)."""
    text = str(exc).strip() or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return line if len(line) <= 300 else f"{line[:100]} … {line[-190:]}"
