"""MILP mutation study: random (zoo model, segment occurrence, replacement) triples through
`mutate.apply` (splice + HiGHS shape/channel MILP + materialise + verify).

    nice -n 10 .venv/bin/python benchmarks/milp.py [--triples 1000] [--db PATH] [--seed 0]

Triple sources (each reported separately):
  db   occurrences from `segments.segment_model(graph, db)`, replacements from `db.replacements(...)`
       (same arity and spatial ratio, channel ratio within x4) as `SegmentRecord.model()`;
  zoo  occurrences = random contiguous windows (1-30 nodes, convex in canonical order) of the target,
       replacements = windows cut from the other zoo models (80 % arity-matched, 20 % any).
The db source is used when a segment database exists (--db, else the default cache path).

Reports: acceptance rate and rejection reasons; share of accepted mutants that are valid by an
independent re-check (onnx full check, graph.load, onnxruntime with default optimisations on a
different random input, same I/O signature) — must be 100 %; MILP solve time p50/p95 (goal: p50 <=
20 ms for segments up to 30 nodes); splice+resolve+verify wall time per mutant. Baseline measured in
the same run: the naive splice of the replacement as it is (no MILP), checked the same way.
Writes benchmarks/results/milp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autogo_deploy import zoo  # noqa: E402
from autogo_deploy.graph import load  # noqa: E402
from autogo_deploy.mutate import Mutant, apply, io_signature  # noqa: E402

# small input sizes keep a 1,000-triple run within minutes on 2 shared cores (VGG-16 is left out:
# the zoo builds it only at 224x224, 138 M parameters, seconds of protobuf copying per mutant)
TARGETS = {
    "nb201": {},
    "nb101": {},
    "fbnet": {},
    "mobilenet_v2": {"input_size": 64},
    "resnet18": {"input_size": 64},
    "resnet50": {"input_size": 64},
    "edsr": {"input_size": 32},
}
MAX_NODES = 30


def pct(values, q):
    return float(np.percentile(values, q)) if values else None


def independent_check(model, original) -> str | None:
    """A second, independent validity check (not the one inside mutate.apply)."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(model.SerializeToString(), full_check=True)
        g = load(model, cleanup=False)
        if io_signature(g.model) != io_signature(original):
            return "signature"
        rng = np.random.default_rng(12345)
        feeds = {n: rng.standard_normal(s).astype(np.float32) for n, _, s in io_signature(original)["inputs"]}
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        for (_, _, shape), v in zip(io_signature(original)["outputs"], outs, strict=True):
            if tuple(v.shape) != shape or not np.isfinite(v).all():
                return "output"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    return None


def naive_splice(graph, occ, replacement, ports):
    """Baseline: the replacement inlined as it is, inputs/outputs bound in order, no resolution."""
    ins, outs = ports or graph.boundary(occ)
    try:
        return graph.splice(occ, replacement, ins, outs)
    except Exception:
        return None


class ZooSource:
    name = "zoo"

    def __init__(self, graphs, rng):
        self.graphs, self.rng = graphs, rng
        self.pool: dict[tuple[int, int], list] = {}
        for name, g in graphs.items():
            for _ in range(150):
                w = self.window(g)
                ins, outs = g.boundary(w)
                self.pool.setdefault((len(ins), len(outs)), []).append((name, w))

    def window(self, g):
        k = self.rng.randint(1, min(MAX_NODES, len(g.nodes)))
        i = self.rng.randrange(0, len(g.nodes) - k + 1)
        return [n.name for n in g.nodes[i : i + k]]

    def draw(self, target):
        g = self.graphs[target]
        occ = self.window(g)
        ins, outs = g.boundary(occ)
        matched = self.pool.get((len(ins), len(outs)))
        if matched and self.rng.random() < 0.8:
            src, w = self.rng.choice([p for p in matched if p[0] != target] or matched)
        else:
            src = self.rng.choice(sorted(self.graphs))
            w = self.window(self.graphs[src])
        return occ, self.graphs[src].extract(w), f"{src}[{w[0]}..{w[-1]}]", None


class DBSource:
    name = "db"

    def __init__(self, graphs, rng, db):
        from autogo_deploy.segments import segment_model

        self.graphs, self.rng, self.db = graphs, rng, db
        self.occ = {
            n: [o for o in segment_model(g, db) if len(o.node_names) <= MAX_NODES] for n, g in graphs.items()
        }
        self.cache: dict[tuple, list] = {}

    def draw(self, target):
        for _ in range(50):
            o = self.rng.choice(self.occ[target])
            key = (o.signature, o.hash)
            if key not in self.cache:
                cr = float(o.signature.channel_ratio)
                self.cache[key] = self.db.replacements(o, limit=30, channel_ratio_range=(cr / 4, cr * 4))
            subs = [r for r in self.cache[key] if r.n_nodes <= MAX_NODES]
            if subs:
                rec = self.rng.choice(subs)
                ports = (list(o.inputs), list(o.outputs))  # the DB's port order
                return list(o.node_names), rec.model(seed=self.rng.randrange(1000)), f"db#{rec.id}", ports
        return None


def open_db(path):
    from autogo_deploy.segments.db import SegmentDB, default_path

    p = Path(path) if path else default_path()
    if not p.is_file():
        return None, f"no segment database at {p}"
    return SegmentDB(p), str(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--triples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None, help="segment database (default: the cache's default DB)")
    ap.add_argument("--naive-every", type=int, default=4, help="naive-splice baseline on every k-th triple")
    ap.add_argument("--time-limit-s", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "milp.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    graphs = {n: load(zoo.build(n, seed=0, **kw)) for n, kw in TARGETS.items()}
    print(f"loaded {len(graphs)} zoo targets in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    db, db_note = open_db(args.db)
    sources = [ZooSource(graphs, rng)]
    if db is not None:
        sources.insert(0, DBSource(graphs, rng, db))
    print(f"sources: {[s.name for s in sources]} ({db_note})", file=sys.stderr)
    rows = []
    for i in range(args.triples):
        src = sources[i % len(sources)]
        target = rng.choice(sorted(TARGETS))
        drawn = src.draw(target)
        if drawn is None:
            src, drawn = sources[-1], sources[-1].draw(target)
        occ, replacement, rep_name, ports = drawn
        g = graphs[target]
        align = rng.choice([1, 8, 16])
        t = time.perf_counter()
        io = {"inputs": ports[0], "outputs": ports[1]} if ports else {}
        result = apply(g, occ, replacement, seed=i, align=align, time_limit_s=args.time_limit_s, **io)
        wall_ms = (time.perf_counter() - t) * 1e3
        cert = result.certificate
        row = {
            "source": src.name, "target": target, "occurrence_nodes": len(occ), "replacement": rep_name,
            "occurrence": f"{occ[0]}..{occ[-1]}",
            "replacement_nodes": len(replacement.graph.node), "align": align,
            "accepted": isinstance(result, Mutant), "wall_ms": wall_ms,
            "milp_ms": cert.solve_time_ms if cert else None,
            "milp_cpu_ms": cert.solve_cpu_ms if cert else None,
            "milp_vars": cert.num_vars if cert else None, "milp_rows": cert.num_constraints if cert else None,
            "timings_ms": result.timings_ms,
        }  # fmt: skip
        if isinstance(result, Mutant):
            row["valid"] = independent_check(result.model, g.model)
            row["inherited_param_share"] = result.inherited_param_share
            row["macs_rel_change_segment"] = (
                result.changes["macs_after"] - result.changes["macs_before"]
            ) / max(result.changes["macs_before"], 1)
        else:
            row["code"], row["stage"], row["reason"] = result.code, result.stage, result.reason
        if (i // len(sources)) % args.naive_every == 0:
            ins, outs = g.boundary(occ)
            rin = [
                v
                for v in replacement.graph.input
                if v.name not in {t.name for t in replacement.graph.initializer}
            ]
            if len(rin) == len(ins) and len(replacement.graph.output) == len(outs):
                naive = naive_splice(g, occ, replacement, ports)
                row["naive_valid"] = naive is not None and independent_check(naive, g.model) is None
        rows.append(row)
        if (i + 1) % 50 == 0:
            acc = sum(r["accepted"] for r in rows) / len(rows)
            print(f"{i + 1}/{args.triples} triples, accepted {acc:.1%}", file=sys.stderr)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"partial": True, "rows": rows}, default=str))
    report = summarise(rows, args, db_note, time.perf_counter() - t0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": report, "rows": rows}, indent=1, default=str))
    print_table(report)
    print(f"\nwrote {args.out}")


def summarise(rows, args, db_note, total_s) -> dict:
    def block(rs):
        acc = [r for r in rs if r["accepted"]]
        solved = [r["milp_ms"] for r in rs if r["milp_ms"] is not None]
        small = [r["milp_ms"] for r in rs if r["milp_ms"] is not None and r["replacement_nodes"] <= MAX_NODES]
        naive = [r for r in rs if "naive_valid" in r]
        return {
            "triples": len(rs),
            "accepted": len(acc),
            "acceptance_rate": len(acc) / len(rs) if rs else None,
            "valid_among_accepted": sum(r["valid"] is None for r in acc) / len(acc) if acc else None,
            "invalid_examples": [r["valid"] for r in acc if r["valid"] is not None][:5],
            "milp_solves": len(solved),
            "milp_ms_p50": pct(solved, 50), "milp_ms_p95": pct(solved, 95),
            "milp_ms_p50_upto_30_nodes": pct(small, 50),
            "milp_cpu_ms_p50": pct([r["milp_cpu_ms"] for r in rs if r["milp_cpu_ms"] is not None], 50),
            "milp_cpu_ms_p95": pct([r["milp_cpu_ms"] for r in rs if r["milp_cpu_ms"] is not None], 95),
            "milp_vars_p50": pct([r["milp_vars"] for r in rs if r["milp_vars"]], 50),
            "mutant_ms_p50": pct([r["wall_ms"] for r in acc], 50),
            "mutant_ms_p95": pct([r["wall_ms"] for r in acc], 95),
            "stage_ms_p50": {
                k: pct([r["timings_ms"].get(k, 0.0) for r in acc], 50)
                for k in ("resolve", "milp_solve", "materialise", "splice", "verify")
            },
            "rejections": dict(Counter(f"{r['stage']}:{r['code']}" for r in rs if not r["accepted"]).most_common()),
            "inherited_param_share_mean": statistics.fmean([r["inherited_param_share"] for r in acc]) if acc else None,
            "naive_checked": len(naive),
            "naive_valid_rate": sum(r["naive_valid"] for r in naive) / len(naive) if naive else None,
            "resolved_valid_rate_same_subset": (
                sum(r["accepted"] and r["valid"] is None for r in naive) / len(naive) if naive else None
            ),
        }  # fmt: skip

    return {
        "triples": len(rows),
        "db": db_note,
        "seed": args.seed,
        "time_limit_s": args.time_limit_s,
        "total_s": total_s,
        "load_avg": os.getloadavg(),
        "all": block(rows),
        "by_source": {
            s: block([r for r in rows if r["source"] == s]) for s in sorted({r["source"] for r in rows})
        },
        "by_target": {t: block([r for r in rows if r["target"] == t]) for t in TARGETS},
    }


def print_table(rep) -> None:
    def f(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    print(
        f"\nMILP mutation study: {rep['triples']} triples, db: {rep['db']}, load avg {rep['load_avg'][0]:.1f}"
    )
    head = f"{'set':<14}{'n':>6}{'accept':>8}{'valid':>8}{'milp p50':>10}{'p95':>8}{'mutant p50':>12}{'p95':>8}{'naive ok':>10}"
    print(head + "\n" + "-" * len(head))
    sets = [("all", rep["all"])] + [(f"src:{k}", v) for k, v in rep["by_source"].items()]
    sets += [(k, v) for k, v in rep["by_target"].items()]
    for name, b in sets:
        print(
            f"{name:<14}{b['triples']:>6}{f(b['acceptance_rate'], '{:.1%}'):>8}"
            f"{f(b['valid_among_accepted'], '{:.1%}'):>8}{f(b['milp_ms_p50']):>10}{f(b['milp_ms_p95']):>8}"
            f"{f(b['mutant_ms_p50'], '{:.0f}'):>12}{f(b['mutant_ms_p95'], '{:.0f}'):>8}"
            f"{f(b['naive_valid_rate'], '{:.1%}'):>10}"
        )
    a = rep["all"]
    print(
        f"\nMILP solve p50 for replacements <= {MAX_NODES} nodes: {f(a['milp_ms_p50_upto_30_nodes'])} ms wall"
        f" (goal <= 20); CPU p50/p95 {f(a['milp_cpu_ms_p50'])}/{f(a['milp_cpu_ms_p95'])} ms"
    )
    print(f"stage medians (ms, accepted): {a['stage_ms_p50']}")
    print(f"naive splice valid {f(a['naive_valid_rate'], '{:.1%}')} vs resolved valid "
          f"{f(a['resolved_valid_rate_same_subset'], '{:.1%}')} on the same {a['naive_checked']} triples")  # fmt: skip
    print("rejections:", a["rejections"])


if __name__ == "__main__":
    main()
