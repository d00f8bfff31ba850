"""A search's checkpoint: `state.json` (config, history, the record of the front and of everything
measured, the graft library's entries) beside the ONNX files of the candidates whose bytes the search
keeps and of the library's deltas (`graft-<id>.onnx`). No pickle; written
atomically after every generation, so an interrupted run resumes from its last finished generation
(`optimize --checkpoint DIR --resume`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from google.protobuf.message import DecodeError

from autogo_deploy.candidate import Candidate
from autogo_deploy.errors import InputError

VERSION = 1
GRAFT = "graft-"  # file name prefix of the graft library's deltas


def write(search, generation: int) -> None:
    """Every measured candidate's record, and the ONNX files of those whose bytes the search keeps
    (front, baseline, a few measured: `Search._release_memory`); files of released ones are removed,
    so the folder stays the size of what is kept (every measured ResNet-50 mutant of a 21-minute run
    would be ~120 GB)."""
    folder = search.checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    keep = {c.cid for c in search.front()} | {search.baseline.cid}
    keep |= {c.cid for c in search.pool.values() if c.measured}
    with_model = {cid for cid in keep if search.pool[cid].has_model}
    for cid in with_model:
        path = folder / f"{cid}.onnx"
        if not path.exists():
            tmp = path.with_suffix(".onnx.tmp")
            tmp.write_bytes(search.pool[cid].model_bytes)
            tmp.replace(path)
    for e in search.library.entries.values():  # the graft library's deltas, as ONNX (graft.to_bytes)
        path = folder / f"{GRAFT}{e.source}.onnx"
        if not path.exists():
            tmp = path.with_suffix(".onnx.tmp")
            tmp.write_bytes(e.data)
            tmp.replace(path)
    state = {
        "version": VERSION,
        "generation": generation,
        "config": asdict(search.cfg),
        "baseline": search.baseline.cid,
        "history": search.history,
        "modeled_gaps": search.modeled_gaps,  # proposer's figure vs measurement, per measured candidate
        "candidates": [search.pool[cid].to_json() | {"model": cid in with_model} for cid in sorted(keep)],
        "grafts": search.library.to_json(),
    }
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, folder / "state.json")
    for path in folder.glob("*.onnx"):  # released since the last write (state.json no longer needs it)
        if path.stem in search.pool and path.stem not in with_model:  # only files this search wrote
            path.unlink(missing_ok=True)
        source = path.stem.removeprefix(GRAFT)
        if path.stem.startswith(GRAFT) and source in search.pool and source not in search.library.entries:
            path.unlink(missing_ok=True)  # a delta the library let go


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
            has_model = doc.pop("model", True)  # False: a record whose bytes the search had released
            data = (folder / f"{doc['cid']}.onnx").read_bytes() if has_model else b""
            c = Candidate(model_bytes=data, **doc)
            if c.cid == search.baseline.cid:
                search.baseline.measured = c.measured or search.baseline.measured
                continue
            search.pool[c.cid] = c
        grafts = state.get("grafts") or {"entries": [], "tried": []}
        for e in grafts["entries"]:
            data = (folder / f"{GRAFT}{e['source']}.onnx").read_bytes()
            search.library.offer(e["source"], float(e["gain"]), data, e["change"])
        search.library.tried = {(a, b) for a, b in grafts["tried"]}
        search.history = list(state.get("history", []))
        search.modeled_gaps = [float(x) for x in state.get("modeled_gaps", [])]
        search.start_generation = int(state["generation"])
    except (OSError, ValueError, KeyError, TypeError, DecodeError) as exc:
        raise InputError(f"checkpoint {folder} is unreadable: {exc}") from None
