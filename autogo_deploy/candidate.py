"""One network the search has seen: its ONNX bytes, where it came from, what was predicted and measured.

A candidate's bytes live in memory, or, for big models, in a file of the run's spill folder
(`Candidate.spill`): a VGG-16 mutant is 550 MB, and a generation proposes a dozen while the front and
the best measured ones are kept, which held 13 GB in memory before. `model_bytes` reads the file back
when the bytes are needed (measurement, scoring, as a parent) and `has_model` says whether they are
still kept at all without reading them.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass
class Candidate:
    cid: str
    model_bytes: bytes = field(repr=False)  # a property (below): memory or the spill file
    parent: str | None
    generation: int
    changes: list[dict] = field(default_factory=list)
    arch: str | None = None
    macs: int = 0
    params: int = 0
    peak_mem_mb: float = 0.0
    depth: int = 0  # weighted layers on the longest path (report.structure.layer_structure)
    predicted: dict = field(default_factory=dict)
    measured: dict | None = None
    # the target's own cost model evaluated by the proposer on the mutant (npu-sim: latency_ms,
    # energy_mj, power_w; exact figures of a deterministic target, not a prediction); None elsewhere
    modeled: dict | None = None
    evaluator: float | None = None
    acc_delta: float | None = None
    depth_drop: float | None = None  # share of the input's depth this model lost (set by the search)
    widths: dict = field(default_factory=dict)  # main-path width per resolution (width.py)
    width_drop: float | None = None  # share of the input's main-path width lost (set by the search)
    spill_path: Path | None = field(default=None, repr=False)
    # the bytes are this tool's own checked output (the cleaned input, a verified mutant), so they
    # are parsed without validating again (graph.from_verified); never set for bytes read from a
    # user's file (a checkpoint folder included)
    verified: bool = field(default=False, repr=False)
    # what this mutant changed of its parent (graft.to_bytes), while the search decides whether its
    # library keeps it; not part of the record
    delta: bytes | None = field(default=None, repr=False)

    def cost(self, key: str, scale: float = 1.0) -> float | None:
        """Measured value when there is one, else the cost model's, else the (rescaled) prediction."""
        if key in ("macs", "params"):
            return float(getattr(self, key))
        if key == "neg_acc":  # maximise predicted accuracy
            acc = self.predicted.get("acc")
            return None if acc is None else -float(acc)
        for figures in (self.measured, self.modeled):
            if figures and figures.get(key) is not None:
                return float(figures[key])
        value = self.predicted.get(key)
        return None if value is None else float(value) * scale

    def metrics(self, scale: float = 1.0) -> dict:
        return {
            "latency_ms": self.cost("latency_ms", scale),
            "energy_mj": self.cost("energy_mj", scale),
            "power_w": self.cost("power_w"),  # measured, else the cost model's; never predicted
            "params": self.params,
            "macs": self.macs,
            "peak_mem_mb": self.peak_mem_mb,
            "acc_delta": self.acc_delta,
            "depth_drop": self.depth_drop,
            "width_drop": self.width_drop,
        }

    def to_json(self) -> dict:
        """Every field but the model (whose bytes may sit in a 500 MB file), where it is kept and the
        `verified` mark (a checkpoint read back is a user's file: its models are validated again)."""
        return {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("model_bytes", "spill_path", "verified", "delta")
        }

    # ---- where the bytes live ---------------------------------------------------------------
    @property
    def has_model(self) -> bool:
        """Whether the model's bytes are kept (in memory or in the spill file)."""
        return bool(self._memory) or self.spill_path is not None

    @property
    def nbytes(self) -> int:
        """Size of the kept model (0 once released), without reading a spill file."""
        if self._memory:
            return len(self._memory)
        return self.spill_path.stat().st_size if self.spill_path is not None else 0

    def spill(self, folder: Path) -> None:
        """Move the bytes to `folder/<cid>.onnx` (written once) and drop them from memory."""
        if self.spill_path is None:
            path = Path(folder) / f"{self.cid}.onnx"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(self._memory)
                tmp.replace(path)
            self.spill_path = path
        self._memory = b""

    @classmethod
    def from_spill(cls, path: Path, **fields) -> Candidate:
        """A candidate whose bytes are already in a spill file (written by a proposer worker)."""
        c = cls(model_bytes=b"", **fields)
        c.spill_path = Path(path)
        return c


def _get_bytes(self: Candidate) -> bytes:
    if self._memory or self.spill_path is None:
        return self._memory
    return self.spill_path.read_bytes()


def _set_bytes(self: Candidate, value: bytes) -> None:
    """Assigning b"" releases the model: memory and spill file."""
    self._memory = value
    if not value and self.spill_path is not None:
        self.spill_path.unlink(missing_ok=True)
        self.spill_path = None


# the dataclass __init__ assigns `model_bytes`, which now goes through the property
Candidate.model_bytes = property(_get_bytes, _set_bytes)  # type: ignore[assignment]


def candidate_id(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()[:12]
