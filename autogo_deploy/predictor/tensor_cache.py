"""Graph tensors of whole search spaces, cached in the cache folder as safetensors (no pickle).

Building the compact tensors of 10,000 NB201 networks takes a minute or two on a busy machine; the
cache makes every later training, evaluation and `predictor accuracy` run start at once. A cache
file is keyed by the feature-format version, so changing the featuriser invalidates it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autogo_deploy.predictor.features import NUM_FEATURES, GraphTensors

FEATURE_VERSION = 5


def pack(graphs: list[GraphTensors]) -> dict[str, np.ndarray]:
    n_off = np.zeros(len(graphs) + 1, np.int64)
    e_off = np.zeros(len(graphs) + 1, np.int64)
    n_off[1:] = np.cumsum([g.num_nodes for g in graphs])
    e_off[1:] = np.cumsum([g.edges.shape[1] for g in graphs])
    return {
        "x": np.concatenate([g.x for g in graphs]) if graphs else np.zeros((0, NUM_FEATURES), np.float32),
        "edges": np.concatenate([g.edges for g in graphs], axis=1) if graphs else np.zeros((2, 0), np.int64),
        "depth": np.concatenate([g.depth for g in graphs]) if graphs else np.zeros(0, np.float32),
        "repeat": np.concatenate([g.repeat for g in graphs]) if graphs else np.zeros(0, np.float32),
        "n_off": n_off,
        "e_off": e_off,
    }


def unpack(arrays: dict[str, np.ndarray]) -> list[GraphTensors]:
    n_off, e_off = arrays["n_off"], arrays["e_off"]
    out = []
    for i in range(len(n_off) - 1):
        a, b = int(n_off[i]), int(n_off[i + 1])
        out.append(
            GraphTensors(
                x=arrays["x"][a:b],
                edges=arrays["edges"][:, int(e_off[i]) : int(e_off[i + 1])],
                depth=arrays["depth"][a:b],
                repeat=arrays["repeat"][a:b],
                members=[[j] for j in range(b - a)],
            )
        )
    return out


def save(path: Path, graphs: list[GraphTensors], keys: list[str]) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tensors.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    meta = {"keys": json.dumps(keys), "feature_version": str(FEATURE_VERSION)}
    save_file(pack(graphs), tmp, metadata=meta)
    os.replace(tmp, path)


def load(path: Path) -> tuple[list[GraphTensors], list[str]] | None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        if meta.get("feature_version") != str(FEATURE_VERSION):
            return None
        return unpack(load_file(str(path))), json.loads(meta["keys"])
    except Exception:  # a truncated or foreign file is rebuilt, never trusted
        return None


def cached_graphs(
    name: str,
    keys: list[str],
    build: Callable[[str], GraphTensors],
    *,
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[GraphTensors]:
    """Tensors for `keys`, from the cache file `<name>` when it holds them all, else built (and saved)."""
    from autogo_deploy.paths import cache_dir

    path = cache_dir() / "predictor" / "tensors" / f"{name}-v{FEATURE_VERSION}.safetensors"
    stored = load(path) if cache else None
    known: dict[str, GraphTensors] = {}
    if stored is not None:
        known = dict(zip(stored[1], stored[0], strict=True))
    missing = [k for k in dict.fromkeys(keys) if k not in known]
    for i, k in enumerate(missing):
        known[k] = build(k)
        if progress and (i + 1) % 500 == 0:
            progress(i + 1, len(missing))
    if missing and cache:
        all_keys = list(known)
        save(path, [known[k] for k in all_keys], all_keys)
    return [known[k] for k in keys]
