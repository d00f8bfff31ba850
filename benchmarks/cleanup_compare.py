"""onnxslim vs onnxsim as the baseline cleanup: which handles the zoo and onnx's real test models best.

For each model: does the tool succeed, how many nodes remain, wall time, and do the cleaned model's
outputs match the original on random inputs (onnxruntime)? onnxsim is only needed for this study
(`pip install onnxsim`); the toolkit itself uses onnxslim (see README for the decision).

    .venv/bin/python benchmarks/cleanup_compare.py [--zoo resnet50,mobilenet_v2,...]
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import onnx

from autogo_deploy import onnx_ingest as ingest
from autogo_deploy.onnx_run import check_equivalent


def _prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    model, _ = ingest.ensure_opset(model)
    ingest.pin_input_shapes(model, None)
    return ingest.infer_static_shapes(model)


def _run_tool(name: str, model: onnx.ModelProto) -> dict:
    t0 = time.perf_counter()
    try:
        if name == "onnxslim":
            out = ingest.cleanup(model, fold_bn=False)
        else:
            import onnxsim

            out, ok = onnxsim.simplify(model)
            if not ok:
                raise RuntimeError("onnxsim check failed")
        elapsed = time.perf_counter() - t0
        diff = check_equivalent(model, out)
        return {"ok": True, "nodes": len(out.graph.node), "seconds": round(elapsed, 3), "max_abs_diff": diff}
    except Exception as exc:  # a study: record the failure and go on
        return {"ok": False, "error": str(exc).splitlines()[0][:200], "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default="resnet18,resnet50,mobilenet_v2,vgg16_bn,edsr")
    args = ap.parse_args()
    models: dict[str, onnx.ModelProto] = {}
    light = Path(onnx.__file__).parent / "backend/test/data/light"
    for f in sorted(glob.glob(str(light / "*.onnx"))):
        models["onnx:" + Path(f).stem.removeprefix("light_")] = onnx.load(f)
    try:
        from autogo_deploy import zoo

        for name in filter(None, args.zoo.split(",")):
            models["zoo:" + name] = zoo.build(name)
    except ImportError:
        print("zoo not available; only onnx's test models")
    rows = []
    for label, model in models.items():
        base = _prepare(model)
        row = {"model": label, "nodes_before": len(base.graph.node)}
        for tool in ("onnxslim", "onnxsim"):
            row[tool] = _run_tool(tool, base)
        rows.append(row)
        s, m = row["onnxslim"], row["onnxsim"]
        print(
            f"{label:24s} {row['nodes_before']:5d} | slim "
            f"{(s.get('nodes') if s['ok'] else 'FAIL')!s:>5} {s['seconds']:7.2f}s | sim "
            f"{(m.get('nodes') if m['ok'] else 'FAIL')!s:>5} {m['seconds']:7.2f}s"
        )
    summary = {
        tool: {
            "succeeded": sum(r[tool]["ok"] for r in rows),
            "models": len(rows),
            "total_nodes": sum(r[tool].get("nodes", 0) for r in rows if r[tool]["ok"]),
            "total_seconds": round(sum(r[tool]["seconds"] for r in rows), 2),
        }
        for tool in ("onnxslim", "onnxsim")
    }
    print(json.dumps(summary, indent=2))
    out = Path(__file__).parent / "results" / "cleanup_compare.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
