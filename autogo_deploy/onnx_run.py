"""Running ONNX models on onnxruntime's CPU provider to check them: random feeds, plain runs, and
equivalence of a model before and after a rewrite (cleanup)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from autogo_deploy.errors import ModelError, first_line
from autogo_deploy.onnx_ingest import graph_inputs


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in graph_inputs(model):
        ttype = vi.type.tensor_type
        shape = [d.dim_value for d in ttype.shape.dim]
        np_dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        if np.issubdtype(np_dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(np_dtype)
        elif np_dtype == np.bool_:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[vi.name] = rng.integers(0, 4, shape).astype(np_dtype)
    return feeds


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # a failing run is reported as one error line, not onnxruntime's log
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check_equivalent(
    before: onnx.ModelProto, after: onnx.ModelProto, *, seed: int = 0, rtol: float = 1e-3, atol: float = 1e-4
) -> float:
    """Run both models on the same random inputs; return max abs difference or raise ModelError."""
    feeds = random_inputs(before, seed)
    try:
        ref = run_ort(before, feeds)
        got = run_ort(after, feeds)
    except Exception as exc:
        raise ModelError(f"onnxruntime could not run the model: {first_line(exc)}") from None
    worst = 0.0
    for a, b in zip(ref, got, strict=True):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ModelError(f"cleanup changed an output shape {a.shape} -> {b.shape}")
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - b))))
            if not np.allclose(a, b, rtol=rtol, atol=atol):
                raise ModelError(f"cleanup changed the model's outputs (max abs diff {worst:.3g})")
    return worst
