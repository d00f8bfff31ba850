"""Independent PyTorch re-implementations used to check the ONNX zoo numerically.

They follow the original code (NB201 `TinyNetwork`/`InferCell` with every edge computed and 'none'
as x * 0; HW-NAS-Bench `ChannelShuffle`; PyTorch `pixel_shuffle`), reading weights from the ONNX
initializers by name, so an ONNX graph that drops or rewires anything disagrees with them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def nb201_torch(model: onnx.ModelProto, ops: tuple[str, ...], x: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    w = {k: torch.from_numpy(v.copy()) for k, v in initializers(model).items()}
    edges = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

    def bn(t, name):
        return F.batch_norm(
            t, w[f"{name}.mean"], w[f"{name}.var"], w[f"{name}.scale"], w[f"{name}.bias"], False, 0.0, 1e-5
        )

    def rcb(t, name, stride=1):
        k = w[f"{name}.conv.weight"]
        return bn(F.conv2d(F.relu(t), k, stride=stride, padding=k.shape[-1] // 2), f"{name}.bn")

    def edge(op, t, name):
        if op == "nor_conv_3x3" or op == "nor_conv_1x1":
            return rcb(t, name)
        if op == "avg_pool_3x3":
            return F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
        if op == "skip_connect":
            return t
        return t.mul(0.0)

    with torch.no_grad():
        h = bn(F.conv2d(torch.from_numpy(x), w["stem.conv.weight"], padding=1), "stem.bn")
        index = 0
        for stage in range(3):
            if stage:
                name = f"cells.{index}"
                a = rcb(rcb(h, f"{name}.conv_a", 2), f"{name}.conv_b")
                r = F.conv2d(F.avg_pool2d(h, 2, 2), w[f"{name}.shortcut.conv.weight"])
                h, index = r + a, index + 1
            for _ in range(5):
                nodes = [h]
                for j in (1, 2, 3):
                    terms = [
                        edge(op, nodes[s], f"cells.{index}.edge{s}{d}")
                        for (s, d), op in zip(edges, ops, strict=True)
                        if d == j
                    ]
                    nodes.append(sum(terms))
                h, index = nodes[3], index + 1
        h = F.relu(bn(h, "lastact.bn")).mean(dim=(2, 3))
        return F.linear(h, w["classifier.weight"], w["classifier.bias"]).numpy()


def channel_shuffle_torch(x: np.ndarray, groups: int) -> np.ndarray:
    import torch

    t = torch.from_numpy(x)
    n, c, h, w = t.shape
    return t.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).contiguous().view(n, c, h, w).numpy()


def pixel_shuffle_torch(x: np.ndarray, r: int) -> np.ndarray:
    import torch

    return torch.nn.functional.pixel_shuffle(torch.from_numpy(x), r).numpy()


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]
