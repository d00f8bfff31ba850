"""Segment database build study: full-corpus build time and peak memory, replacement query latency,
segment counts by size and family, multi-node pieces of the BPE vocabulary.

    .venv/bin/python benchmarks/db_build.py [--jobs 2] [--vocab-size 2000] [--limit N] [--queries 2000]

Baseline measured in the same run: the per-network cost of the naive corpus path (zoo ONNX with
weights + graph.load) against the weight-free fast path, on a fixed sample, extrapolated to the corpus.
Writes benchmarks/results/db_build.json. The machine is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class PeakRSS:
    """Polls the resident memory of this process plus its children (the build workers)."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            try:
                total = me.memory_info().rss
                for child in me.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"main": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}


def baseline(n_per_family: int = 6) -> dict:
    """Per-network seconds of the naive path (zoo ONNX with weights + graph.load) vs the fast path."""
    from autogo_deploy.segments import corpus
    from autogo_deploy.segments.lite import build_lite
    from autogo_deploy.segments.tokenize import graph_tokens

    sample = []
    for fam in ("nb201", "nb101", "fbnet"):
        items = corpus.items([fam], nb101_samples=0)
        step = max(1, len(items) // n_per_family)
        sample += items[::step][:n_per_family]
    t = time.process_time()
    for it in sample:
        graph_tokens(corpus.load_struct(it))
    naive = (time.process_time() - t) / len(sample)
    t = time.process_time()
    for it in sample:
        graph_tokens(build_lite(it.family, it.arch))
    fast = (time.process_time() - t) / len(sample)
    return {"networks": len(sample), "naive_cpu_s_per_network": naive, "fast_cpu_s_per_network": fast,
            "speedup": naive / fast}  # fmt: skip


def query_latency(db, n: int, seed: int = 0) -> dict:
    import random

    from autogo_deploy.segments.segment import Signature

    recs = list(db.iter_segments())
    rng = random.Random(seed)
    picks = [rng.choice(recs) for _ in range(n)]
    exact, ranged = [], []
    for rec in picks:
        t = time.perf_counter()
        db.replacements(rec, limit=50)
        exact.append((time.perf_counter() - t) * 1e3)
        sig = Signature(rec.n_inputs, rec.n_outputs, rec.spatial_ratio, rec.channel_ratio)
        t = time.perf_counter()
        db.replacements(
            sig, limit=50, channel_ratio_range=(float(rec.channel_ratio) / 4, float(rec.channel_ratio) * 4)
        )
        ranged.append((time.perf_counter() - t) * 1e3)

    def pct(xs, q):
        return statistics.quantiles(xs, n=100)[q - 1]

    return {"queries": n, "exact_p50_ms": statistics.median(exact), "exact_p90_ms": pct(exact, 90),
            "range_p50_ms": statistics.median(ranged), "range_p90_ms": pct(ranged, 90)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=None, help="cap each NAS family (quick runs)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--keep", type=Path, default=None, help="also keep the database at this path")
    args = ap.parse_args()

    from autogo_deploy.segments.build import build
    from autogo_deploy.segments.db import SegmentDB

    load_before = os.getloadavg()
    base = baseline()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "segments.db"
        cpu0 = cpu_seconds()
        with PeakRSS() as peak:
            t = time.perf_counter()
            result = build(path, jobs=args.jobs, vocab_size=args.vocab_size, limit=args.limit)
            wall = time.perf_counter() - t
        cpu1 = cpu_seconds()
        load_after = os.getloadavg()
        with SegmentDB(path) as db:
            stats = db.stats()
            lat = query_latency(db, args.queries)
        size_mb = path.stat().st_size / 2**20
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    n_nets = sum(result.networks.values())
    doc = {
        "benchmark": "db_build",
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                    "note": "shared machine; the build ran with the load above (nice -n 10 recommended)"},
        "build": {"wall_s": wall, "cpu_s": cpu, "cpu_s_total": sum(cpu.values()),
                  "cpu_ms_per_network": 1e3 * sum(cpu.values()) / n_nets, "peak_rss_mb": peak.peak_bytes / 2**20,
                  "jobs": args.jobs, "phases_s": result.phase_seconds, "db_size_mb": size_mb,
                  "fallbacks_to_graph_load": result.fallbacks},
        "corpus": result.networks,
        "vocabulary": {"requested": args.vocab_size, "pieces": stats["pieces"],
                       "multi_node_pieces": stats["multi_node_pieces"], "node_tokens": stats["tokens"],
                       "autogo_reference": {"pieces": 2000, "multi_node_pieces": 813}},
        "segments": {"total": stats["segments"], "by_size": stats["by_size"], "by_family": stats["by_family"]},
        "replacement_query": lat,
        "baseline_naive_corpus_path": {**base, "extrapolated_cpu_s_full_corpus": base["naive_cpu_s_per_network"] * n_nets},
    }  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "db_build.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")

    b = doc["build"]
    rows = [
        ("networks", ", ".join(f"{k} {v:,}" for k, v in result.networks.items())),
        ("build wall", f"{wall:.1f} s  (jobs={args.jobs}; load avg {load_before[0]:.1f} -> {load_after[0]:.1f})"),
        ("build CPU", f"{b['cpu_s_total']:.1f} s ({b['cpu_ms_per_network']:.2f} ms/network); phases {result.phase_seconds}"),
        ("peak RSS (main + workers)", f"{b['peak_rss_mb']:.0f} MiB"),
        ("database size", f"{size_mb:.1f} MiB"),
        ("node tokens / pieces / multi-node", f"{stats['tokens']} / {stats['pieces']} / {stats['multi_node_pieces']} "
         "(AutoGO: 2000 pieces, 813 multi-node)"),
        ("segments", f"{stats['segments']:,}"),
        ("replacement query p50 / p90", f"{lat['exact_p50_ms']:.3f} / {lat['exact_p90_ms']:.3f} ms (exact ratio), "
         f"{lat['range_p50_ms']:.3f} / {lat['range_p90_ms']:.3f} ms (ratio range x1/4..x4)"),
        ("baseline: naive path", f"{base['naive_cpu_s_per_network'] * 1e3:.0f} ms/network CPU vs fast "
         f"{base['fast_cpu_s_per_network'] * 1e3:.1f} ms ({base['speedup']:.0f}x); full corpus naive ~"
         f"{base['naive_cpu_s_per_network'] * n_nets / 60:.0f} CPU-min"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("\nsegments by size (nodes: segments / occurrences)")
    print("  " + "  ".join(f"{r['nodes']}: {r['segments']}/{r['occurrences']}" for r in stats["by_size"]))
    print("segments by family (segments / occurrences)")
    print("  " + "  ".join(f"{r['family']}: {r['segments']}/{r['occurrences']}" for r in stats["by_family"]))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
