"""The shared benchmark data (../shared/data) as arrays: NB201 accuracy/latency, FBNet latency, references.

Nothing here is copied into the repository except HELP's 10 reference archs per space (resolved to
arch strings in `reference_archs.json`); everything else is read from `paths.shared_data_dir()`.
Device names drop the `_ms` suffix of the CSV columns (e.g. `1080ti_1`, `pixel3`); the same name in the
NB201 and FBNet files is the same physical device setting (HELP measured both).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from autogo_deploy.errors import InputError
from autogo_deploy.paths import shared_data_dir

ACC_COLUMNS = ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc")


@dataclass(frozen=True)
class Table:
    """Rows of one benchmark file: arch keys, NB201 indices (or -1) and a label matrix (NaN = missing)."""

    archs: tuple[str, ...]
    indices: np.ndarray
    columns: tuple[str, ...]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


def _read(rel: str) -> list[dict]:
    path = shared_data_dir() / rel
    if not path.is_file():
        raise InputError(f"benchmark file {rel} not found under {shared_data_dir()}")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@cache
def nb201_accuracy() -> Table:
    rows = _read("nb201/nb201_accuracy_train10k.csv")
    vals = np.array([[float(r[c]) for c in ACC_COLUMNS] for r in rows], np.float64)
    return Table(
        tuple(r["arch_str"] for r in rows), np.array([int(r["nb201_index"]) for r in rows]), ACC_COLUMNS, vals
    )


@cache
def nb201_latency() -> Table:
    rows = _read("nb201/nb201_latency_9dev_train10k.csv")
    cols = [c for c in rows[0] if c.endswith("_ms")]
    vals = np.array([[float(r[c]) for c in cols] for r in rows], np.float64)
    return Table(
        tuple(r["arch_str"] for r in rows),
        np.array([int(r["nb201_index"]) for r in rows]),
        tuple(c[: -len("_ms")] for c in cols),
        vals,
    )


@cache
def fbnet_latency() -> Table:
    rows = _read("fbnet/fbnet_latency_train_devices.csv")
    cols = [c for c in rows[0] if c.endswith("_ms")]
    vals = np.array([[float(r[c]) for c in cols] for r in rows], np.float64)
    return Table(
        tuple(r["arch_str"] for r in rows),
        np.arange(len(rows)),
        tuple(c[: -len("_ms")] for c in cols),
        vals,
    )


@cache
def nb201_index_to_arch() -> dict[int, str]:
    out = {}
    for table in (nb201_accuracy(), nb201_latency()):
        out.update(zip(table.indices.tolist(), table.archs, strict=True))
    return out


REFERENCE_FILE = Path(__file__).with_name("reference_archs.json")


@cache
def reference_archs(space: str = "nb201") -> tuple[str, ...]:
    """HELP's 10 reference archs of a space (NB201 arch strings / FBNet op strings).

    They ship with the package (`predictor/reference_archs.json`), so calibrating a new target needs
    no benchmark data; `shared_reference_archs` derives them from the shared files."""
    doc = json.loads(REFERENCE_FILE.read_text())
    if space not in ("nb201", "fbnet"):
        raise InputError(f"no reference set for space {space!r}", hint="valid: nb201, fbnet")
    return tuple(doc[space])


def shared_reference_archs(space: str = "nb201") -> tuple[str, ...]:
    """The reference set resolved from ../shared/data (HELP's indices into the NB201 / FBNet files)."""
    doc = json.loads((shared_data_dir() / "help_reference_archs.json").read_text())
    if space == "nb201":
        lookup = nb201_index_to_arch()
        missing = [i for i in doc["nasbench201"] if i not in lookup]
        if missing:
            raise InputError(f"reference NB201 indices {missing} are not in the shared data files")
        return tuple(lookup[i] for i in doc["nasbench201"])
    if space == "fbnet":
        table = fbnet_latency()
        return tuple(table.archs[i] for i in doc["fbnet"])
    raise InputError(f"no reference set for space {space!r}", hint="valid: nb201, fbnet")


def nb201_split(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, test) of nb201_accuracy()/nb201_latency() (same archs, same order)."""
    acc, lat = nb201_accuracy(), nb201_latency()
    if acc.archs != lat.archs:
        raise InputError("the NB201 accuracy and latency files list different archs")
    perm = np.random.default_rng(seed).permutation(len(acc.archs))
    n_test = int(round(test_fraction * len(perm)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def all_nb201_archs() -> list[str]:
    """All 15,625 NB201 arch strings in NB201's gen_all product order."""
    from autogo_deploy.zoo.nb201 import NUM_ARCHS, arch_from_ordinal

    return [arch_from_ordinal(i) for i in range(NUM_ARCHS)]
