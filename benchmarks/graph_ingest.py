"""Graph ingest speed: build every NB201 network, load it, infer shapes, compute features; ResNet-101.

    .venv/bin/python benchmarks/graph_ingest.py                 # all 15,625 NB201 archs
    .venv/bin/python benchmarks/graph_ingest.py --limit 500 --load-every 10

Per NB201 arch (NB201 gen_all order, seed 0):
  build_ms    zoo.nb201(arch) -> onnx.ModelProto (weights included; warm weight cache)
  load_ms     graph.load(model): validation, onnxslim cleanup, static shapes, canonical order, features
              (every --clean-every'th arch: onnxslim dominates and takes ~0.5 s a model)
  load_raw_ms graph.load(model, cleanup=False): the same without onnxslim
  shapes_ms   onnx_ingest.infer_static_shapes(model) (strict ONNX shape inference)
  features_ms graph.Graph(model with shapes): canonical order + per-node features and MACs
Baselines measured in the same run: a cold-cache build (weight cache cleared before each build: the
cost without reusing RNG draws) and onnx's own parse of the serialized model (the floor of any load).
Also checks the zoo against the published counts: NB201 (491 archs) and NB101 (500 archs), MACs of
graph.py and the NASLib FLOP convention (autogo_deploy.zoo.reference_counts).
Writes benchmarks/results/graph_ingest.json.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import onnx

from autogo_deploy import graph, zoo
from autogo_deploy.onnx_ingest import infer_static_shapes
from autogo_deploy.paths import shared_data_dir
from autogo_deploy.zoo import builder
from autogo_deploy.zoo.reference_counts import naslib_flops, trainable_params

nb201 = importlib.import_module("autogo_deploy.zoo.nb201")
nb101 = importlib.import_module("autogo_deploy.zoo.nb101")
RESULTS = Path(__file__).resolve().parent / "results" / "graph_ingest.json"


def _ms(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1e3


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {
        "n": len(v),
        "mean_ms": statistics.fmean(v),
        "p50_ms": v[len(v) // 2],
        "p90_ms": v[int(0.9 * (len(v) - 1))],
        "max_ms": v[-1],
        "total_s": sum(v) / 1e3,
    }


def bench_nb201(limit: int, load_every: int, clean_every: int, cold_every: int) -> dict:
    times: dict[str, list[float]] = {
        k: [] for k in ("build", "build_cold", "parse", "load", "load_raw", "shapes", "features")
    }
    nodes, macs = [], []
    n = min(limit, nb201.NUM_ARCHS)
    t0 = time.perf_counter()
    for i in range(n):
        arch = nb201.arch_from_ordinal(i)
        model, ms = _ms(lambda arch=arch: nb201.nb201(arch))
        times["build"].append(ms)
        if cold_every and i % cold_every == 0:
            builder._CACHE.clear()
            cold, ms = _ms(lambda arch=arch: nb201.nb201(arch))
            times["build_cold"].append(ms)
            assert cold.SerializeToString() == model.SerializeToString()
        if load_every and i % load_every == 0:
            data = model.SerializeToString()
            times["parse"].append(_ms(lambda data=data: onnx.load_from_string(data))[1])
            if clean_every and i % clean_every == 0:
                g, ms = _ms(lambda model=model: graph.load(model))
                times["load"].append(ms)
                nodes.append(len(g.nodes))
            times["load_raw"].append(_ms(lambda model=model: graph.load(model, cleanup=False))[1])
            shaped, ms = _ms(lambda model=model: infer_static_shapes(model))
            times["shapes"].append(ms)
            feat, ms = _ms(lambda shaped=shaped: graph.Graph(shaped))
            times["features"].append(ms)
            macs.append(feat.totals()["macs"])
        if (i + 1) % 500 == 0 or i + 1 == n:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  nb201 {i + 1}/{n} ({rate:.1f} archs/s)", file=sys.stderr, flush=True)
    return {
        "archs_built": n,
        "archs_loaded": len(times["load_raw"]),
        "archs_loaded_with_cleanup": len(times["load"]),
        "ms": {k: _summary(v) for k, v in times.items()},
        "nodes_after_cleanup": _summary([float(x) for x in nodes]) | {"unit": "nodes"} if nodes else {},
        "macs_range": [min(macs), max(macs)] if macs else None,
    }


def bench_resnet101(repeats: int) -> dict:
    times: dict[str, list[float]] = {
        k: [] for k in ("build", "parse", "load", "load_raw", "shapes", "features")
    }
    for _ in range(repeats):
        builder._CACHE.clear()
        model, ms = _ms(lambda: zoo.build("resnet101"))
        times["build"].append(ms)
        data = model.SerializeToString()
        times["parse"].append(_ms(lambda data=data: onnx.load_from_string(data))[1])
        g, ms = _ms(lambda model=model: graph.load(model))
        times["load"].append(ms)
        times["load_raw"].append(_ms(lambda model=model: graph.load(model, cleanup=False))[1])
        shaped, ms = _ms(lambda model=model: infer_static_shapes(model))
        times["shapes"].append(ms)
        times["features"].append(_ms(lambda shaped=shaped: graph.Graph(shaped))[1])
    return {
        "ms": {k: _summary(v) for k, v in times.items()},
        "macs": g.totals()["macs"],
        "nodes": len(g.nodes),
    }


def agreement() -> dict:
    data = shared_data_dir(required=False)
    if data is None:
        return {"skipped": "../shared/data not found"}
    out = {}
    with (data / "nb201" / "nb201_flops_params_491.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    mac_err, flop_err, param_err = [], [], []
    for row in rows:
        g = graph.Graph(infer_static_shapes(nb201.nb201(row["arch_str"])))
        ref_flops, ref_params = float(row["flops_M"]) * 1e6, float(row["params_M"]) * 1e6
        mac_err.append(g.totals()["macs"] / ref_flops - 1)
        flop_err.append(naslib_flops(g) / ref_flops - 1)
        param_err.append(trainable_params(g) / ref_params - 1)
    out["nb201_491"] = _errors(mac_err, flop_err, param_err)
    recs = json.loads((data / "nb101" / "nb101_500archs_naslib.json").read_text())["nasbench101"]["cifar10"]
    mac_err, flop_err, param_err = [], [], []
    for i, (key, rec) in enumerate(recs.items()):
        g = graph.Graph(infer_static_shapes(nb101.nb101(*nb101.spec_from_naslib_key(key))))
        mac_err.append(g.totals()["macs"] / (rec["flops"] * 1e6) - 1)
        flop_err.append(naslib_flops(g) / (rec["flops"] * 1e6) - 1)
        param_err.append(trainable_params(g) / (rec["params"] * 1e6) - 1)
        if (i + 1) % 100 == 0:
            print(f"  nb101 agreement {i + 1}/{len(recs)}", file=sys.stderr, flush=True)
    out["nb101_500"] = _errors(mac_err, flop_err, param_err)
    return out


def _errors(mac_err, flop_err, param_err) -> dict:
    def stats(e):
        return {
            "min_rel_err": min(e),
            "median_rel_err": statistics.median(e),
            "max_rel_err": max(e),
            "within_1pct": sum(abs(x) <= 0.01 for x in e),
        }

    return {
        "n": len(mac_err),
        "graph_macs_vs_published_flops": stats(mac_err),
        "naslib_convention_vs_published_flops": stats(flop_err),
        "trainable_params_vs_published": stats(param_err),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=nb201.NUM_ARCHS, help="NB201 archs to build")
    ap.add_argument(
        "--load-every", type=int, default=1, help="load/shapes/features every k-th arch (0: none)"
    )
    ap.add_argument(
        "--clean-every", type=int, default=25, help="also load with onnxslim cleanup every k-th arch"
    )
    ap.add_argument("--cold-every", type=int, default=50, help="cold-cache build baseline every k-th arch")
    ap.add_argument("--resnet-repeats", type=int, default=3)
    ap.add_argument("--no-agreement", action="store_true", help="skip the NB201/NB101 reference comparison")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    result = {
        "schema_version": 1,
        "benchmark": "graph_ingest",
        "env": {"python": platform.python_version(), "onnx": onnx.__version__, "machine": platform.machine()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "nb201": bench_nb201(args.limit, args.load_every, args.clean_every, args.cold_every),
        "resnet101": bench_resnet101(args.resnet_repeats),
    }
    if not args.no_agreement:
        result["agreement"] = agreement()
    result["wall_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print_table(result)
    print(f"\nwrote {args.out}")
    return 0


def _print_table(result: dict) -> None:
    nb = result["nb201"]
    print(
        f"\nNB201: {nb['archs_built']} built, {nb['archs_loaded']} loaded (cleanup=False), "
        f"{nb['archs_loaded_with_cleanup']} loaded with onnxslim cleanup"
    )
    print(f"{'phase':<12}{'NB201 mean ms':>15}{'p50':>9}{'p90':>9}{'ResNet-101 ms':>15}")
    for phase in ("build", "build_cold", "parse", "load", "load_raw", "shapes", "features"):
        s = result["nb201"]["ms"].get(phase, {})
        r = result["resnet101"]["ms"].get(phase, {})
        if not s.get("n") and not r.get("n"):
            continue
        row = f"{phase:<12}"
        row += f"{s['mean_ms']:>15.1f}{s['p50_ms']:>9.1f}{s['p90_ms']:>9.1f}" if s.get("n") else f"{'-':>33}"
        row += f"{r['p50_ms']:>15.0f}" if r.get("n") else f"{'-':>15}"
        print(row)
    for name, a in result.get("agreement", {}).items():
        if not isinstance(a, dict):
            continue
        print(f"\n{name}: relative error vs published (min / median / max, within 1%)")
        for label, s in a.items():
            if isinstance(s, dict):
                print(
                    f"  {label:<40}{s['min_rel_err']:+.4f} / {s['median_rel_err']:+.4f} / "
                    f"{s['max_rel_err']:+.4f}  {s['within_1pct']}/{a['n']}"
                )


if __name__ == "__main__":
    sys.exit(main())
