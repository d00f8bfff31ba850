"""How much of the network's structure a result kept: weighted layers and depth, counted exactly.

The accuracy change `optimize` reports is predicted, and the predictor learnt accuracy from
NAS-Bench cells: on a zoo network a deep cut is an extrapolation (it ranks ResNet-18 above ResNet-101
and ResNet-50). The report therefore also says, exactly, how many weighted layers (Conv,
ConvTranspose, Gemm, MatMul with a constant weight) the result has and how many lie on its longest
path, and warns when that depth fell a lot.
"""

from __future__ import annotations

import onnx

from autogo_deploy.depth import layer_count_and_depth

SHALLOW_WARNING_RATIO = 0.75  # warn when the result keeps less than this share of the input's depth


def layer_structure(model: bytes | onnx.ModelProto) -> dict:
    """{"weighted_layers": n, "depth": weighted layers on the longest input-to-output path}."""
    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    weighted, depth = layer_count_and_depth(model)
    return {"weighted_layers": weighted, "depth": depth}


def compare(baseline: bytes, result: bytes) -> dict:
    """Both structures, and a warning line when the result is much shallower than the input."""
    base, best = layer_structure(baseline), layer_structure(result)
    doc = {"baseline": base, "best": best, "source": "exact"}
    if base["depth"] and best["depth"] < SHALLOW_WARNING_RATIO * base["depth"]:
        doc["warning"] = (
            f"the result has {best['depth']} weighted layers on its longest path, the input "
            f"{base['depth']}: a cut this deep is outside what the accuracy predictor learnt from "
            "(NAS-Bench cells), so its accuracy change is an extrapolation; check it on your data "
            "(--evaluator) before relying on it"
        )
    return doc
