"""Backend registry: backend name -> module path, imported lazily by name.

Each backend module follows the contract in `autogo_deploy/backends/base.py`: it defines
`availability(target) -> tuple[bool, str]` and `HARNESS = "<file in profilers/>"`. New backends are
added here by name only; their modules are imported on first use so that a missing or broken
backend makes only its own targets unavailable, with the reason.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from autogo_deploy.errors import BackendUnavailable, InputError
from autogo_deploy.paths import profilers_dir

if TYPE_CHECKING:
    from autogo_deploy.target import Target

BACKENDS: dict[str, str] = {
    "ort": "autogo_deploy.backends.ort",
    "tvm": "autogo_deploy.backends.tvm",
    "npu-sim": "autogo_deploy.backends.npu_sim",
}


def backend_module(name: str) -> ModuleType:
    """Import the module for backend `name`; BackendUnavailable if it cannot be imported."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}", hint=f"known backends: {', '.join(BACKENDS)}")
    module_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BackendUnavailable(
                f"backend {name!r} is not part of this installation ({module_name} missing)"
            ) from exc
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {exc}") from exc
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {exc}") from exc
    missing = [attr for attr in ("availability", "HARNESS") if not hasattr(module, attr)]
    if missing:
        raise BackendUnavailable(
            f"backend module {module_name} does not define {', '.join(missing)} (see backends/base.py)"
        )
    return module


def availability(target: Target) -> tuple[bool, str]:
    """(True, what runs) or (False, one-line reason). Never raises for a missing backend."""
    try:
        module = backend_module(target.backend)
    except BackendUnavailable as exc:
        return False, exc.one_line()
    try:
        ok, reason = module.availability(target)
    except Exception as exc:  # a backend probe must not take the tool down
        return False, f"availability check of backend {target.backend!r} failed: {type(exc).__name__}: {exc}"
    return bool(ok), str(reason)


def harness(target: Target) -> Path:
    """Path of the profilers/*.py script that measures on `target`."""
    module = backend_module(target.backend)
    path = profilers_dir() / module.HARNESS
    if not path.is_file():
        raise BackendUnavailable(
            f"harness {module.HARNESS!r} of backend {target.backend!r} not found in {profilers_dir()}"
        )
    return path
