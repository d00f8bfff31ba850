"""The verbs as library functions; the only module that wires the others together.

from autogo_deploy import api
result = api.optimize("model.onnx", "ort-cpu", budgets=["latency_ms=8"], generations=4)
result.best            # candidate.Candidate (measured) or None when nothing beat the input
api.profile("model.onnx", "npu-sim")     # measure.Measurement
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.constraints import (
    DEFAULT_DEPTH_DROP,
    DEFAULT_WIDTH_DROP,
    Budgets,
    check_objective,
    parse_budgets,
)
from autogo_deploy.errors import InputError
from autogo_deploy.loop_measure import (
    in_process_measurer,
    measurement_summary,
    run_evaluator,
    verify_fast_fusion,
)
from autogo_deploy.search import Search, SearchConfig, SearchResult


def resolve_model_source(model: str | Path, *, arch: str | None = None) -> tuple[bytes, str]:
    """A model file, or `zoo:NAME` for a built-in network (the embedded defaults)."""
    text = str(model)
    if text.startswith("zoo:"):
        from autogo_deploy import zoo

        name = text[4:]
        kwargs = {"arch": arch} if arch else {}
        return zoo.build(name, **kwargs).SerializeToString(), text
    path = Path(text)
    if not path.exists():
        raise InputError(f"model file not found: {path} (or use zoo:NAME, see `autogo-deploy zoo list`)")
    from autogo_deploy.onnx_ingest import read_model

    # read from its folder: external data is loaded (with the same path checks as every other
    # command) and errors name the file
    proto, _ = read_model(path)
    try:
        return proto.SerializeToString(), str(path)
    except ValueError:  # protobuf cannot serialize 2 GB
        raise InputError(f"{path}: models over 2 GB (protobuf's limit) cannot be optimized") from None


def profile(model, target: str, **kwargs):
    """Measure `model` on `target` (see measure.measure for the keyword arguments)."""
    from autogo_deploy.measure import measure

    return measure(model, target, **kwargs)


def check(model, target: str, **kwargs):
    """The CI gate (see gate.py); returns its verdict object."""
    from autogo_deploy import checking

    return checking.run_check(model, target, **kwargs)


@dataclass
class OptimizeResult:
    search: SearchResult
    target: str
    objective: str
    budgets: Budgets
    source: str
    predictor: dict
    space: str | None
    proposer_stats: dict
    head_to_head: dict | None = None  # headtohead.confirm_best's record (None when not run)
    # the folder holding big candidates' ONNX files (tempfile.TemporaryDirectory): removed when this
    # result is garbage-collected or the process ends, so `best.model_bytes` reads while it lives
    spill_dir: object = None

    @property
    def best(self) -> Candidate | None:
        return self.search.best


COST_TARGETS = (1.0, 0.75, 0.5)


def cost_targets_for(objective: str) -> tuple[float, ...]:
    """MILP cost targets the proposer draws from: AutoGO's cost-neutral mutation (1.0) always, and
    cheaper segments (x0.75, x0.5 of the source's MACs) when the objective is a cost; whether a
    cheaper mutant is kept is then up to the predictor and the budgets (acc_drop)."""
    return COST_TARGETS if objective in ("latency", "energy", "macs") else (1.0,)


DEFAULT_GRAFT = 2


def default_graft(modeled: bool, space: str | None, strategy: str) -> int:
    """Grafts per generation when `--graft` is not given: 2 where the proposer costs every mutant
    exactly (npu-sim), so a delta's gain is a modeled figure, not a prediction (ResNet-50, 8 seeds:
    docs/optimize.md); 0 elsewhere: timed targets (library gains would be predictions; not
    studied), `--space nb201` (cell edits carry no deltas) and random search (it replays nothing)."""
    return DEFAULT_GRAFT if modeled and space is None and strategy == "pareto" else 0


MAX_MACS_GROWTH = 1.5


def max_macs_growth_for(objective: str) -> float | None:
    """When the objective is a cost, a replacement may cost at most 1.5x its source segment's MACs
    (mutate.apply); an accuracy search keeps AutoGO's freedom to grow a segment."""
    return MAX_MACS_GROWTH if objective in ("latency", "energy", "macs") else None


def optimize(
    model: str | Path,
    target: str,
    *,
    budgets: list[str] | Budgets | None = None,
    objective: str = "latency",
    generations: int = 4,
    population: int = 12,
    measure_top: int = 2,
    measure_top_exact: int | None = None,
    parent_share: str = "auto",
    front_strata: str = "auto",
    segment_weight: str = "macs",
    escape_after: int | None = None,
    widen_share: float = 0.0,
    graft: int | None = None,
    model_mutants: bool = True,
    spill_mb: float = 256.0,
    time_limit_s: float | None = None,
    seed: int = 0,
    strategy: str = "pareto",
    space: str | None = None,
    arch: str | None = None,
    evaluator: str | None = None,
    jobs: int | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    input_shapes: dict | None = None,
    db_path: str | Path | None = None,
    measure_overrides: dict | None = None,
    head_to_head_rounds: int = 6,
    on_generation: Callable[[dict], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> OptimizeResult:
    """Evolve `model` for `target` under `budgets`; see README § optimize."""
    from autogo_deploy import scoring
    from autogo_deploy.backends.npu_sim import fast_stand_in
    from autogo_deploy.graph import load
    from autogo_deploy.measure import measure
    from autogo_deploy.nb201_proposer import NB201Proposer
    from autogo_deploy.proposers import GraphProposer, graph_stats
    from autogo_deploy.target import load_target

    status = on_status or (lambda _msg: None)
    if head_to_head_rounds < 0 or head_to_head_rounds == 1:
        raise InputError(f"--head-to-head takes 0 (off) or at least 2 rounds, got {head_to_head_rounds}")
    budgets = budgets if isinstance(budgets, Budgets) else parse_budgets(budgets)
    if space is None:  # the accuracy head extrapolates outside NB201: depth and width leashes by default
        budgets = budgets.with_default("depth_drop", DEFAULT_DEPTH_DROP)
        budgets = budgets.with_default("width_drop", DEFAULT_WIDTH_DROP)
    objective = check_objective(objective)
    tgt = load_target(target)
    ok, reason = tgt.available()
    if not ok:
        from autogo_deploy.errors import BackendUnavailable

        raise BackendUnavailable(f"target {tgt.name!r} is unavailable: {reason}")
    if strategy not in ("pareto", "random"):
        raise InputError(f"unknown strategy {strategy!r}; valid: pareto, random")
    if parent_share not in ("auto", "even", "rank"):
        raise InputError(f"unknown parent share {parent_share!r}; valid: auto, even, rank")
    if front_strata not in ("auto", "depth", "off"):
        raise InputError(f"unknown front strata {front_strata!r}; valid: auto, depth, off")
    if escape_after is not None and escape_after < 1:
        raise InputError(f"--escape-after takes a number of generations >= 1, got {escape_after}")
    if not 0.0 <= widen_share <= 1.0:
        raise InputError(f"--widen-share takes a share in [0, 1], got {widen_share}")
    if graft is not None and graft < 0:
        raise InputError(f"--graft takes a number of grafts per generation >= 0, got {graft}")
    from autogo_deploy.segment_weights import resolve_mode

    weigh_by = resolve_mode(segment_weight, tgt.backend)
    modeled = model_mutants and tgt.backend == "npu-sim"  # the proposer costs every mutant there
    if graft is None:
        graft = default_graft(modeled, space, strategy)
    elif graft > 0 and (strategy == "random" or space is not None):
        raise InputError("--graft replays mutation deltas: it needs the pareto strategy and no --space")
    if not spill_mb > 0:
        raise InputError(f"--spill-mb must be > 0, got {spill_mb}")
    if space not in (None, "nb201"):
        raise InputError(f"unknown --space {space!r}; valid: nb201")
    # mutants of at least spill_mb MB wait in files here, not in memory (candidate.py)
    spill_dir = tempfile.TemporaryDirectory(prefix="autogo-spill-")
    data, source = resolve_model_source(model, arch=arch if space == "nb201" else None)
    status("loading and cleaning the input model")
    if space == "nb201":
        if not arch:
            raise InputError("--space nb201 needs --arch (the input network's NB201 arch string)")
        proposer = NB201Proposer(seed=seed)
        baseline = proposer.build(arch, None, [])
    else:
        g = load(data, input_shapes=input_shapes, cleanup=True, verify=True)
        clean = g.to_bytes()
        baseline = Candidate(candidate_id(clean), clean, None, 0, **graph_stats(g.model), verified=True)
        from autogo_deploy.segments.db import SegmentDB, default_db

        if db_path is not None:
            db = SegmentDB(db_path)  # DatabaseError (exit 2) when missing, corrupt or foreign
        else:
            status("opening the segment database (built into the cache on first use)")
            db = default_db(progress=True)
        proposer = GraphProposer(
            str(db.path),
            align=tgt.channel_multiple,
            jobs=jobs,
            cost_targets=cost_targets_for(objective),
            max_macs_growth=max_macs_growth_for(objective),
            macs_per_param=tgt.macs_per_param,
            segment_weight=weigh_by,
            npu_options=tgt.options if weigh_by == "target" else None,
            spill=(spill_dir.name, int(spill_mb * 2**20)),
            widen_share=widen_share,
            min_depth=budgets.min_depth(baseline.depth),
            width_leash=(baseline.widths, budgets.limits["width_drop"])
            if "width_drop" in budgets.limits
            else None,
            # a target with a cost model (npu-sim): every mutant costed there in the worker, ranked
            # by that instead of a prediction (Candidate.modeled)
            cost_model=tgt.options if modeled else None,
            graft=graft > 0,
        )
    # measure-in-the-loop uses a shorter time cap than `profile` (the ±1% goal still stops it earlier)
    overrides = {"time_cap_s": min(10.0, float(tgt.protocol.get("time_cap_s", 10.0)))}
    overrides.update(measure_overrides or {})
    if overrides.get("max_runs") and "min_runs" not in overrides:
        overrides["min_runs"] = min(int(tgt.protocol.get("min_runs", 1)), int(overrides["max_runs"]))

    loop_tgt, fast_fusion = fast_stand_in(tgt)
    if fast_fusion:
        status("npu-sim: candidates are costed with TVM's fusion rule on the ONNX graph (fast path)")

    simulate = in_process_measurer(loop_tgt, seed=seed, **overrides)

    def measurer(c: Candidate) -> dict:
        if simulate is not None:  # simulated target: the harness body in this process, same figures
            return simulate(c.model_bytes)
        return measurement_summary(measure(c.model_bytes, loop_tgt, seed=seed, **overrides))

    status("loading the predictor")
    scorer, predictor_info = scoring.make_scorer(tgt, space=space)
    baseline.predicted = scorer([baseline])[0]
    baseline.acc_delta = 0.0
    baseline.depth_drop = 0.0
    baseline.width_drop = 0.0
    config = SearchConfig(
        objective=objective,
        generations=generations,
        population=population,
        measure_top=measure_top,
        measure_top_exact=measure_top_exact,
        parent_share=parent_share,
        front_strata=front_strata,
        escape_after=escape_after,
        graft=graft,
        time_limit_s=time_limit_s,
        seed=seed,
        strategy=strategy,
    )
    search = Search(
        baseline,
        proposer=proposer,
        scorer=scorer,
        measurer=measurer,
        budgets=budgets,
        config=config,
        evaluator=(lambda c: run_evaluator(evaluator, c.model_bytes)) if evaluator else None,
        on_generation=on_generation,
        checkpoint=checkpoint,
        grafter=getattr(proposer, "graft", None),
    )
    if resume:
        if checkpoint is None:
            raise InputError("--resume needs --checkpoint DIR")
        search.load_checkpoint(checkpoint)
    status(f"measuring the input on {tgt.name}")
    # What exists now (torch, the predictor, the segment database, the input) lives for the whole
    # search: frozen out of the cyclic GC, a full collection (each npu-sim measurement runs one
    # after onnxslim, onnx_ingest.cleanup) costs ~0 instead of ~0.12 s with torch loaded.
    gc.collect()
    gc.freeze()
    try:
        result = search.run()
    finally:
        gc.unfreeze()
        proposer.close()
    stats = {"accepted": proposer.accepted, "rejections": dict(proposer.rejections)}
    if space is None:
        stats["segment_weight"] = weigh_by
        stats["mutants_modeled"] = modeled
        stats["grafts"] = {
            "per_generation": config.graft,
            "library": len(search.library.entries),
            "tried": len(search.library.tried),
            "in_result": sum(
                1 for ch in (result.best.changes if result.best else []) if ch.get("grafted_from")
            ),
        }
        if search.modeled_gaps:  # the proposer's figures against the measurements of the same models
            gaps = sorted(search.modeled_gaps)
            stats["modeled_vs_measured"] = {
                "candidates": len(gaps),
                "median_rel_diff": gaps[len(gaps) // 2],
                "max_rel_diff": gaps[-1],
                "within_1e-5": sum(g <= 1e-5 for g in gaps),
            }
    h2h = None
    if head_to_head_rounds and result.best is not None:
        from autogo_deploy.headtohead import INTERRUPTED, confirm_best

        if not (result.baseline.measured or {}).get("deterministic"):  # else it is skipped
            status("head-to-head: the input and the result measured in alternating rounds")
        try:
            h2h = confirm_best(
                result,
                lambda data: measurement_summary(measure(data, loop_tgt, seed=seed, **overrides)),
                objective=objective,
                rounds=head_to_head_rounds,
                progress=status,
            )
        except KeyboardInterrupt:
            h2h = {"skipped": INTERRUPTED}
            result.stopped += "; head-to-head interrupted"
    if fast_fusion:
        status("npu-sim: re-costing the input and the result with TVM FuseOps")
        stats["npu_fusion_check"] = verify_fast_fusion(result, tgt, seed=seed)
    return OptimizeResult(
        result, tgt.name, objective, budgets, source, predictor_info, space, stats, h2h, spill_dir
    )
