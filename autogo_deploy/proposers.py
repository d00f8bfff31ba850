"""Where mutants come from.

- `GraphProposer`: AutoGO proper. Partition the parent into segments with the learned BPE merges
  (PSC decomposition: each occurrence S splits the graph into P, S, C), query the segment database
  for boundary-compatible replacements S', splice + resolve by MILP + verify (`mutate.apply`).
  Optionally (`widen_share`) a drawn S is first grown over neighbouring pieces, so that one
  mutation can replace a whole residual branch by a short segment.
  Work is spread over the machine's cores; every returned candidate is a verified valid model.
  With `graft=True` each mutant also carries its delta (graft.py), and `GraphProposer.graft`
  replays the deltas of mutants found elsewhere in the search onto a parent.
- `NB201Proposer` (nb201_proposer.py): mutations that keep an NB201 cell network.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import onnx

from autogo_deploy import graft
from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.constraints import Budgets
from autogo_deploy.errors import InputError
from autogo_deploy.width import main_path_widths, width_drop

_WORKER: dict = {}
WIDEN_PIECES = 4  # a widened source segment spans at most this many BPE pieces


def graph_stats(model: bytes | onnx.ModelProto) -> dict:
    """MACs, params, estimated peak activation memory, depth (weighted layers on the longest
    path) and main-path widths (width.py). A ModelProto is taken as already checked
    (a verified mutant, whose shapes are all inferred): it skips load()'s re-validation, which for a
    ResNet-50 costs ~1 s of serialising and checking per candidate; bytes go through load()."""
    from autogo_deploy.graph import Graph, load
    from autogo_deploy.report.structure import layer_structure

    g = Graph(model) if isinstance(model, onnx.ModelProto) else load(model, cleanup=False)
    t = g.totals()
    return {
        "macs": t["macs"],
        "params": t["params"],
        "peak_mem_mb": _peak_mem_mb(g),
        "depth": layer_structure(g.model)["depth"],
        "widths": main_path_widths(g.model),
    }


def _peak_mem_mb(g) -> float:
    """Largest live activation set along the canonical order (an estimate, labelled as such)."""
    last_use: dict[str, int] = {}
    for n in g.nodes:
        for t in n.inputs:
            last_use[t] = n.index
    live: dict[str, int] = {}
    peak = 0
    sizes = {t: b for n in g.nodes for t, b in zip(n.outputs, _out_bytes(n), strict=False)}
    for n in g.nodes:
        for t in n.outputs:
            live[t] = sizes.get(t, 0)
        peak = max(peak, sum(live.values()))
        for t in list(live):
            if last_use.get(t, -1) <= n.index and t not in g.output_names:
                live.pop(t)
    return peak / 2**20


def _out_bytes(n) -> list[int]:
    from math import prod

    return [4 * prod(s) for s in n.out_shapes]


# ---- AutoGO proposer (segment DB + MILP) --------------------------------------------------------
def _init_worker(
    db_path: str,
    align: int,
    cost_weights: dict | None,
    macs_per_param: float = 0.0,
    segment_weight: str = "macs",
    npu_options: dict | None = None,
    widen_share: float = 0.0,
    max_macs_growth: float | None = None,
    min_depth: int | None = None,
    cost_model: dict | None = None,
    width_leash: tuple[dict, float] | None = None,
    graft: bool = False,
) -> None:
    from autogo_deploy.segments.db import SegmentDB

    _WORKER["db"] = SegmentDB(db_path)
    _WORKER["macs_per_param"] = float(macs_per_param)
    _WORKER["align"] = align
    _WORKER["weights"] = cost_weights
    _WORKER["segment_weight"] = segment_weight
    _WORKER["widen_share"] = float(widen_share)
    _WORKER["max_macs_growth"] = max_macs_growth
    _WORKER["min_depth"] = min_depth
    _WORKER["width_leash"] = width_leash  # (the input's main-path widths, width_drop budget)
    _WORKER["graft"] = graft  # each mutant carries its delta (graft.py)
    _WORKER["rep_depth"] = {}  # replacement id -> weighted layers on its longest path
    _WORKER["npu"] = None
    _WORKER["cost_model"] = None
    if segment_weight == "target" or cost_model is not None:
        from autogo_deploy.backends.npu_model import NpuConstants

        if segment_weight == "target":
            _WORKER["npu"] = NpuConstants.from_options(npu_options or {})
        if cost_model is not None:
            _WORKER["cost_model"] = NpuConstants.from_options(cost_model)


def _mutate_task(args: tuple) -> list[dict]:
    parent, verified, seed, tries, max_nodes, cost_targets, spill = args
    parent_bytes = Path(parent).read_bytes() if isinstance(parent, str) else parent
    from autogo_deploy import mutate, segment_weights
    from autogo_deploy.depth import DepthMap
    from autogo_deploy.graph import from_verified, load
    from autogo_deploy.segments.segment import segmentation

    db = _WORKER["db"]
    rng = random.Random(seed)
    g = from_verified(parent_bytes) if verified else load(parent_bytes, cleanup=False)
    del parent_bytes  # read from a spill file: only the loaded graph is needed from here on
    seg = segmentation(g, db)
    keep = [k for k, o in enumerate(seg.occurrences) if 1 <= len(o.node_names) <= max_nodes]
    occurrences = [seg.occurrences[k] for k in keep]
    # prefer heavy segments: that is where the cost is (segment_weights.py)
    weights = segment_weights.weights(
        g,
        occurrences,
        mode=_WORKER["segment_weight"],
        macs_per_param=_WORKER["macs_per_param"],
        constants=_WORKER["npu"],
    )
    floor = _WORKER.get("min_depth")
    depths = DepthMap(g.model) if floor else None  # the depth_drop budget, checked before the MILP
    out: list[dict] = []
    rejections: dict[str, int] = {}
    for k in range(tries):
        if not occurrences:
            break
        j = rng.choices(range(len(occurrences)), weights=weights)[0]
        occ, widened = occurrences[j], False
        if _WORKER["widen_share"] and rng.random() < _WORKER["widen_share"]:
            # the drawn segment grown over neighbouring BPE pieces (a whole residual branch, say):
            # the pieces of a zoo network are short, so without this no mutation replaces more
            # than a few nodes (segments.segment.Segmentation.widened)
            wide = seg.widened(keep[j], rng.randint(2, WIDEN_PIECES), forward=rng.random() < 0.5)
            if wide is not None and len(wide.node_names) <= max_nodes:
                occ, widened = wide, True
        cr = float(occ.signature.channel_ratio) or 1.0
        replacements = db.replacements(occ, limit=24, channel_ratio_range=(cr / 4, cr * 4))
        if not replacements:
            rejections["no replacement"] = rejections.get("no replacement", 0) + 1
            continue
        if depths is not None:
            need = depths.needed(set(occ.node_names), list(occ.inputs), list(occ.outputs), floor)
            replacements = [r for r in replacements if _replacement_depth(r) >= need]
            if not replacements:  # each would leave the network shallower than the budget allows
                rejections["depth bound"] = rejections.get("depth bound", 0) + 1
                continue
        rep = rng.choice(replacements)
        cost_target = rng.choice(cost_targets)
        m = mutate.apply(
            g,
            list(occ.node_names),
            rep.model(seed=seed + k, params=False),  # its weights are drawn afresh or inherited
            seed=seed * 1000 + k,
            align=_WORKER["align"],
            cost_weights=_WORKER["weights"],
            time_limit_s=1.0,
            inputs=list(occ.inputs),
            outputs=list(occ.outputs),
            cost_target=cost_target,
            max_macs_growth=_WORKER["max_macs_growth"],
        )
        if not isinstance(m, mutate.Mutant):
            rejections[m.stage] = rejections.get(m.stage, 0) + 1
            continue
        change = {
            "segment": occ.segment_id if occ.segment_id is not None else f"unseen:{occ.hash[:10]}",
            "replacement": rep.id,
            "nodes": list(occ.node_names)[:12],
            "n_nodes": len(occ.node_names),
            "widened": widened,
            "cost_target": cost_target,
            "certificate": m.certificate.to_dict(),
            "inherited_param_share": m.inherited_param_share,
            "detail": m.changes,
        }
        item = _finish(m.model, m.data, change, spill, rejections, floor)
        if item is not None:
            item["delta"] = graft.to_bytes(graft.delta(g.model, m.model)) if _WORKER.get("graft") else None
            out.append(item)
        del m  # a VGG-16 mutant's ModelProto is 550 MB: not kept beside its bytes
    return out + [{"rejections": rejections}]


def _finish(model, data: bytes, change: dict, spill, rejections: dict, floor: int | None) -> dict | None:
    """A verified model (`data`: its bytes) as the item handed back to the search: its statistics, its
    cost-model figures and id, big ones spilled to a file; None (a rejection counted) when it breaks
    the depth or width budget, so it is not worth a prediction."""
    stats = graph_stats(model)  # verified: no second load
    if floor and stats["depth"] < floor:
        rejections["depth"] = rejections.get("depth", 0) + 1
        return None
    if _too_narrow(stats["widths"]):
        rejections["width"] = rejections.get("width", 0) + 1
        return None
    modeled = _modeled(model)
    cid = candidate_id(data)
    if spill is not None and len(data) >= spill[1]:
        # big models go to the run's spill folder as files, not through the process pipe
        path = Path(spill[0]) / f"{cid}.onnx"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        data = str(path)
    return {"model": data, "cid": cid, "change": change, "modeled": modeled, **stats}


def _graft_task(args: tuple) -> list[dict]:
    """Replay library deltas (graft.Entry) onto a parent: each result is checked like a mutant (onnx
    checker, shape inference, onnxruntime) and finished the same way."""
    parent, verified, entries, seed, spill = args
    parent_bytes = Path(parent).read_bytes() if isinstance(parent, str) else parent
    from onnx.shape_inference import C as shape_inference_c

    from autogo_deploy.graph import from_verified, load
    from autogo_deploy.mutate import io_signature, verify_model

    g = from_verified(parent_bytes) if verified else load(parent_bytes, cleanup=False)
    del parent_bytes
    io = io_signature(g.model)
    out: list[dict] = []
    rejections: dict[str, int] = {}
    for source, delta_bytes, change in entries:
        model = graft.graft(g.model, graft.from_bytes(delta_bytes))
        if isinstance(model, str):
            rejections["graft conflict"] = rejections.get("graft conflict", 0) + 1
            continue
        try:
            data = shape_inference_c.infer_shapes(model.SerializeToString(), False, True, False)
            model = onnx.load_from_string(data)
        except Exception:
            model = None
        if model is None or verify_model(model, io, seed=seed, data=data) is not None:
            rejections["graft verify"] = rejections.get("graft verify", 0) + 1
            continue
        item = _finish(
            model, data, change | {"grafted_from": source}, spill, rejections, _WORKER.get("min_depth")
        )
        if item is not None:
            out.append(item | {"delta": None})
    return out + [{"rejections": rejections}]


def _too_narrow(widths: dict) -> bool:
    """Whether a mutant's main path narrowed more than the width_drop budget allows (judged exactly
    as the search judges it: Budgets.violations)."""
    leash = _WORKER.get("width_leash")
    if not leash:
        return False
    base, limit = leash
    return bool(Budgets({"width_drop": limit}).violations({"width_drop": width_drop(base, widths)}))


def _modeled(model) -> dict | None:
    """The target's cost model on a verified mutant (npu-sim: ~5 ms for a ResNet-50), or None when
    the proposer has none. The same fusion rule and constants as the measurement in the loop (the
    npu-sim harness with onnx-rules fusion), run on the mutant as spliced. The harness cleans the
    model first; since the splice merges twin nodes itself (simplify.merge_duplicate_nodes) that
    changes no figure on this tool's mutants (tests/test_proposers.py), and every run's report
    checks it (`proposer.modeled_vs_measured`)."""
    consts = _WORKER.get("cost_model")
    if consts is None:
        return None
    from autogo_deploy.backends.npu_fuse import onnx_groups
    from autogo_deploy.backends.npu_model import cost_groups

    cost = cost_groups(onnx_groups(model), consts)
    return {k: float(cost[k]) for k in ("latency_ms", "energy_mj", "power_w")}


def _replacement_depth(rep) -> int:
    """Weighted layers on a replacement segment's longest path (cached per worker)."""
    from autogo_deploy.depth import layer_count_and_depth

    cache = _WORKER["rep_depth"]
    if rep.id not in cache:
        cache[rep.id] = layer_count_and_depth(rep.skeleton())[1]
    return cache[rep.id]


class GraphProposer:
    def __init__(
        self,
        db_path: str,
        *,
        align: int = 1,
        cost_weights=None,
        jobs: int | None = None,
        max_nodes: int = 30,
        cost_targets: tuple[float, ...] = (1.0,),
        macs_per_param: float = 0.0,
        segment_weight: str = "macs",
        npu_options: dict | None = None,
        spill: tuple[str, int] | None = None,
        widen_share: float = 0.0,
        max_macs_growth: float | None = None,
        min_depth: int | None = None,
        cost_model: dict | None = None,
        width_leash: tuple[dict, float] | None = None,
        graft: bool = False,
    ):
        """cost_targets: the MILP cost targets a mutation draws from (see mutate.apply);
        macs_per_param: what a weight costs in MACs on the target (Target.macs_per_param), which
        weighs source segments by their cost there (segment_weight "macs"); segment_weight "target":
        by the npu-sim cost model's latency with the constants in `npu_options` (segment_weights.py);
        spill = (folder, min_bytes): mutants of at least min_bytes are written there by the workers and
        handed over as files (Candidate.spill_path), parents in such a folder are read from it;
        widen_share: the share of mutations whose source segment is widened over 2 to WIDEN_PIECES
        neighbouring BPE pieces (Segmentation.widened); max_macs_growth: mutate.apply's limit on how
        many times its source segment's MACs a replacement may cost (None: no limit); min_depth: the
        fewest weighted layers on the longest path a mutant may keep (the depth_drop budget,
        `Budgets.min_depth`): replacements that cannot keep it are skipped before the MILP, and
        mutants below it are dropped instead of being scored (None: no floor); cost_model: the npu-sim
        target's options: every mutant is then costed by the target's cost model in the worker
        (`Candidate.modeled`), so the search ranks it by that figure instead of a prediction;
        width_leash = (the input's main-path widths, the width_drop budget): mutants whose main path
        narrows further are dropped instead of being scored (width.py; None: no leash);
        graft: every mutant carries its delta to its parent (`Candidate.delta`, graft.py), so the
        search can replay it elsewhere (`GraphProposer.graft`)."""
        if not 0.0 <= widen_share <= 1.0:
            raise InputError(f"widen share must be in [0, 1], got {widen_share}")
        self.spill = (str(spill[0]), int(spill[1])) if spill else None
        self.jobs = max(1, jobs or (os.cpu_count() or 1))
        self.max_nodes = max_nodes
        self.cost_targets = tuple(float(x) for x in cost_targets)
        self.rejections: dict[str, int] = {}
        self.accepted = 0
        self._pool = None
        init = (
            db_path,
            align,
            cost_weights,
            macs_per_param,
            segment_weight,
            npu_options,
            widen_share,
            max_macs_growth,
            min_depth,
            cost_model,
            width_leash,
            graft,
        )
        if self.jobs > 1:
            self._pool = ProcessPoolExecutor(self.jobs, initializer=_init_worker, initargs=init)
        else:
            _init_worker(*init)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(cancel_futures=True)

    def __call__(self, parent: Candidate, rng: random.Random, n: int) -> list[Candidate]:
        per_task = max(1, -(-n // self.jobs))
        source = str(parent.spill_path) if parent.spill_path else parent.model_bytes
        tasks = [
            (
                source,
                parent.verified,
                rng.randrange(2**31),
                per_task,
                self.max_nodes,
                self.cost_targets,
                self.spill,
            )
            for _ in range(self.jobs)
        ]
        results = (
            list(self._pool.map(_mutate_task, tasks)) if self._pool else [_mutate_task(t) for t in tasks]
        )
        return self._collect(results, parent)

    def graft(self, parent: Candidate, entries: list, rng: random.Random) -> list[Candidate]:
        """`parent` with each library entry's delta replayed on it (graft.Library.pick), one model per
        entry that applies; the work is spread over the workers like mutations."""
        if not entries:
            return []
        source = str(parent.spill_path) if parent.spill_path else parent.model_bytes
        seed = rng.randrange(2**31)
        groups = [entries[k :: self.jobs] for k in range(min(self.jobs, len(entries)))]
        tasks = [
            (source, parent.verified, [(e.source, e.data, e.change) for e in group], seed, self.spill)
            for group in groups
        ]
        results = list(self._pool.map(_graft_task, tasks)) if self._pool else [_graft_task(t) for t in tasks]
        return self._collect(results, parent)

    def _collect(self, results: list[list[dict]], parent: Candidate) -> list[Candidate]:
        out = []
        for chunk in results:
            for item in chunk:
                if "rejections" in item:
                    for k, v in item["rejections"].items():
                        self.rejections[k] = self.rejections.get(k, 0) + v
                    continue
                self.accepted += 1
                data = item["model"]
                fields = {
                    "cid": item["cid"],
                    "parent": parent.cid,
                    "generation": 0,
                    "changes": parent.changes + [item["change"]],
                    "macs": item["macs"],
                    "params": item["params"],
                    "peak_mem_mb": item["peak_mem_mb"],
                    "depth": item["depth"],
                    "widths": item["widths"],
                    "modeled": item["modeled"],
                    "verified": True,  # mutate.apply or the graft task verified it
                }
                if isinstance(data, str):  # spilled by the worker
                    c = Candidate.from_spill(Path(data), **fields)
                else:
                    c = Candidate(model_bytes=data, **fields)
                c.delta = item.get("delta")
                out.append(c)
        return out
