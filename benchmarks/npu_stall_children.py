"""What holds an npu-sim search back late in a run: the accuracy gate, or no faster child?

    python benchmarks/npu_stall_children.py best.onnx [--base resnet50] [--children 72] [--seed 7]

`best.onnx` is a result of `autogo-deploy optimize zoo:resnet50 -t npu-sim ... -o best.onnx` (or the
cleaned input itself, to ask the same of the first generation; `--base` names the zoo input). Its
fresh children (the same proposer as the search: latency cost targets, MACs guard, the default depth
leash) are scored by the packaged predictor and simulated on npu-sim; the counts say how many are
predicted no less accurate than the input (acc_drop=0) and how many simulate faster than their
parent. Writes benchmarks/results/npu_stall_children.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from autogo_deploy import api, loop_measure, scoring, zoo
from autogo_deploy.backends.npu_sim import fast_stand_in
from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.constraints import ACC_TOLERANCE_PP, DEFAULT_DEPTH_DROP, parse_budgets
from autogo_deploy.graph import load
from autogo_deploy.proposers import GraphProposer, graph_stats
from autogo_deploy.segments.db import default_db
from autogo_deploy.target import load_target

RESULTS = Path(__file__).parent / "results"


def _candidate(data: bytes) -> Candidate:
    return Candidate(candidate_id(data), data, None, 0, **graph_stats(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="an optimize result for the zoo input on npu-sim")
    ap.add_argument("--base", default="resnet50", help="the zoo network the result came from")
    ap.add_argument("--out", type=Path, default=RESULTS / "npu_stall_children.json")
    ap.add_argument("--children", type=int, default=72)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    tgt = load_target("npu-sim")
    simulate = loop_measure.in_process_measurer(fast_stand_in(tgt)[0], seed=0)
    scorer, _ = scoring.make_scorer(tgt)
    base = _candidate(load(zoo.build(args.base).SerializeToString(), cleanup=True).to_bytes())
    best = _candidate(args.model.read_bytes())
    p_base, p_best = scorer([base, best])
    parent_ms = simulate(best.model_bytes)["latency_ms"]
    floor = parse_budgets([f"depth_drop={DEFAULT_DEPTH_DROP}"]).min_depth(base.depth)
    proposer = GraphProposer(
        str(default_db(progress=False).path),
        align=tgt.channel_multiple,
        jobs=2,
        cost_targets=api.cost_targets_for("latency"),
        max_macs_growth=api.max_macs_growth_for("latency"),
        macs_per_param=tgt.macs_per_param,
        min_depth=floor,
    )
    rng = random.Random(args.seed)
    children: list[Candidate] = []
    try:
        while len(children) < args.children:
            children += proposer(best, rng, 12)
    finally:
        proposer.close()
    acc_ok = faster = both = 0
    for child, pred in zip(children, scorer(children), strict=True):
        ok = pred["acc"] - p_base["acc"] >= -ACC_TOLERANCE_PP
        quick = simulate(child.model_bytes)["latency_ms"] < parent_ms
        acc_ok, faster, both = acc_ok + ok, faster + quick, both + (ok and quick)
    doc = {
        "benchmark": "npu_stall_children",
        "base": args.base,
        "parent": {
            "depth": best.depth,
            "latency_ms": parent_ms,
            "predicted_acc_delta": p_best["acc"] - p_base["acc"],
        },
        "children": len(children),
        "predicted_no_less_accurate": acc_ok,
        "simulated_faster_than_parent": faster,
        "both": both,
        "proposer": {"accepted": proposer.accepted, "rejections": proposer.rejections},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
