"""Where things live: the shared benchmark data, the cache folder, packaged targets/profilers."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from autogo_deploy.errors import InputError

_REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    """The source checkout root (meaningful for editable installs and benchmarks)."""
    return _REPO_ROOT


def shared_data_dir(required: bool = True) -> Path | None:
    """`../shared/data` beside the checkout, or $AUTOGO_SHARED_DATA."""
    env = os.environ.get("AUTOGO_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for cand in candidates:
        if cand.is_dir():
            return cand
    if required:
        raise InputError(
            "benchmark data folder not found",
            hint="expected ../shared/data beside the project, or set AUTOGO_SHARED_DATA",
        )
    return None


def cache_dir() -> Path:
    """Per-user cache ($AUTOGO_CACHE_DIR, else $XDG_CACHE_HOME/autogo-deploy, else ~/.cache/...)."""
    env = os.environ.get("AUTOGO_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = base / "autogo-deploy"
    path.mkdir(parents=True, exist_ok=True)
    return path


def targets_dir() -> Path:
    """The packaged `targets/` folder (autogo_deploy._targets when installed)."""
    try:
        return Path(str(resources.files("autogo_deploy._targets")))
    except ModuleNotFoundError:
        return _REPO_ROOT / "targets"


def profilers_dir() -> Path:
    """The packaged `profilers/` folder (autogo_deploy._profilers when installed)."""
    try:
        return Path(str(resources.files("autogo_deploy._profilers")))
    except ModuleNotFoundError:
        return _REPO_ROOT / "profilers"
