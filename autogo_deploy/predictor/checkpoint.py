"""Checkpoints: weights as safetensors + a JSON manifest. No pickle anywhere.

A checkpoint folder holds
    model.safetensors   the PSCModel state dict (plain tensors only)
    manifest.json       format, model config, target names, accuracy scaling, training config and
                        history, data provenance, the sha256 of model.safetensors and its id
    embedding-<target>.json   optional: target embeddings fitted for this checkpoint on collected
                        measurements (`predictor calibrate --from-db --into-checkpoint`)

The id (first 16 hex digits of the weights' sha256) ties fitted target embeddings to the basis they
were fitted against: an embedding fitted for another checkpoint is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autogo_deploy.errors import InputError

FORMAT = "autogo-deploy-predictor"
FORMAT_VERSION = 3  # 2: separate accuracy and cost encoders; 3: op-kind count bases
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


@dataclass
class Checkpoint:
    model: object  # PSCModel
    manifest: dict
    path: Path | None = None

    @property
    def id(self) -> str:
        return self.manifest.get("id", "")


def embedding_file(folder: str | Path, target: str) -> Path:
    """Where a checkpoint folder keeps an embedding fitted for it (shipped with it when packaged)."""
    return Path(folder) / f"embedding-{target}.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(model, manifest: dict, folder: str | Path) -> Checkpoint:
    """Write weights + manifest atomically into `folder` (created); returns the saved checkpoint."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=".weights.", suffix=".tmp", dir=folder)
    os.close(fd)
    save_file(state, tmp, metadata={"format": FORMAT})
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped checkpoint must be readable by everyone
    os.replace(tmp, folder / WEIGHTS)
    digest = _sha256(folder / WEIGHTS)
    doc = dict(manifest)
    doc.update({"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config(),
                "weights": WEIGHTS, "sha256": digest, "id": digest[:16]})  # fmt: skip
    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / MANIFEST)
    return Checkpoint(model, doc, folder)


def load(folder: str | Path) -> Checkpoint:
    from safetensors.torch import load_file

    from autogo_deploy.predictor.model import PSCModel

    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise InputError(f"no predictor checkpoint in {folder} (missing {MANIFEST})")
    try:
        doc = json.loads(mpath.read_text())
    except ValueError as exc:
        raise InputError(f"corrupt checkpoint manifest {mpath}: {exc}") from None
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{mpath} is not a version-{FORMAT_VERSION} predictor checkpoint",
            hint="retrain with `autogo-deploy predictor train`",
        )
    wpath = folder / doc.get("weights", WEIGHTS)
    if not wpath.is_file() or _sha256(wpath) != doc.get("sha256"):
        raise InputError(f"checkpoint weights {wpath} are missing or do not match the manifest's sha256")
    cfg = doc["model"]
    model = PSCModel(hidden=cfg["hidden"], layers=cfg["layers"], basis=cfg["basis"], devices=cfg["devices"])
    state = load_file(str(wpath))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes of another model version
        raise InputError(f"checkpoint {folder} does not fit this model: {str(exc).splitlines()[0]}") from None
    if missing or unexpected:
        raise InputError(
            f"checkpoint {folder} does not fit the model (missing {missing[:3]}, extra {unexpected[:3]})"
        )
    model.eval()
    return Checkpoint(model, doc, folder)


def packaged_dir() -> Path:
    """The default checkpoint shipped inside the package."""
    return Path(__file__).resolve().parent / "checkpoint"


def cache_checkpoint_dir() -> Path:
    from autogo_deploy.paths import cache_dir

    return cache_dir() / "predictor" / "checkpoint"
