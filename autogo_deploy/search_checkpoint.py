"""A search's checkpoint: `state.json` (config, history, every kept candidate's record) beside the ONNX
files of the front and of everything measured. No pickle; written atomically after every generation,
so an interrupted run resumes from its last finished generation (`optimize --checkpoint DIR --resume`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from autogo_deploy.candidate import Candidate
from autogo_deploy.errors import InputError

VERSION = 1


def write(search, generation: int) -> None:
    folder = search.checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    keep = {c.cid for c in search.front()} | {search.baseline.cid}
    keep |= {c.cid for c in search.pool.values() if c.measured}
    for cid in keep:
        path = folder / f"{cid}.onnx"
        if not path.exists():
            path.write_bytes(search.pool[cid].model_bytes)
    state = {
        "version": VERSION,
        "generation": generation,
        "config": asdict(search.cfg),
        "baseline": search.baseline.cid,
        "history": search.history,
        "modeled_gaps": search.modeled_gaps,  # proposer's figure vs measurement, per measured candidate
        "candidates": [search.pool[cid].to_json() for cid in sorted(keep)],
    }
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, folder / "state.json")


def read(search, folder: Path) -> None:
    """Fill `search` (pool, history, next generation) from a checkpoint folder; InputError when the
    folder holds no checkpoint, an unreadable one, or one of another input model. Its models are a
    user's files: they are validated again when loaded (Candidate.verified stays False)."""
    path = folder / "state.json"
    if not path.is_file():
        raise InputError(f"no checkpoint in {folder} (state.json missing)")
    try:
        state = json.loads(path.read_text())
        if state.get("version") != VERSION:
            raise ValueError("unknown checkpoint version")
        baseline = state["baseline"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"checkpoint {folder} is unreadable: {exc}") from None
    if baseline != search.baseline.cid:
        raise InputError(f"checkpoint {folder} belongs to another input model")
    try:
        for doc in state["candidates"]:
            data = (folder / f"{doc['cid']}.onnx").read_bytes()
            c = Candidate(model_bytes=data, **doc)
            if c.cid == search.baseline.cid:
                search.baseline.measured = c.measured or search.baseline.measured
                continue
            search.pool[c.cid] = c
        search.history = list(state.get("history", []))
        search.modeled_gaps = [float(x) for x in state.get("modeled_gaps", [])]
        search.start_generation = int(state["generation"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"checkpoint {folder} is unreadable: {exc}") from None
