"""MobileNetV2 (torchvision topology, width 1.0), 224x224. ReLU6 is Clip(0, 6)."""

from __future__ import annotations

import onnx

from autogo_deploy.zoo.builder import NetBuilder

# expansion t, output channels c, repeats n, first stride s
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_relu6(b: NetBuilder, x: str, cout: int, k: int, name: str, **kw) -> str:
    y = b.conv_bn(x, cout, k, relu=False, name=name, **kw)
    return b.relu6(y, name=f"{name}.relu6")


def _inverted_residual(b: NetBuilder, x: str, cout: int, stride: int, t: int, name: str) -> str:
    cin = b.channels(x)
    hidden = cin * t
    y = x
    if t != 1:
        y = _conv_bn_relu6(b, y, hidden, 1, f"{name}.expand", pad=0)
    y = _conv_bn_relu6(b, y, hidden, 3, f"{name}.dw", stride=stride, group=hidden)
    y = b.conv_bn(y, cout, 1, pad=0, relu=False, name=f"{name}.project")
    if stride == 1 and cin == cout:
        y = b.add(x, y, name=f"{name}.add")
    return y


def mobilenet_v2(*, seed: int = 0, num_classes: int = 1000, input_size: int = 224) -> onnx.ModelProto:
    """MobileNetV2: stem 32, 17 inverted residual blocks, 1x1 conv to 1280, pool, linear."""
    b = NetBuilder("mobilenet_v2", (1, 3, input_size, input_size), seed=seed)
    x = _conv_bn_relu6(b, "input", 32, 3, "features.0", stride=2)
    i = 1
    for t, c, n, s in SETTINGS:
        for j in range(n):
            x = _inverted_residual(b, x, c, s if j == 0 else 1, t, f"features.{i}")
            i += 1
    x = _conv_bn_relu6(b, x, 1280, 1, f"features.{i}", pad=0)
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    x = b.gemm(x, num_classes, name="classifier")
    return b.finish(x, doc="MobileNetV2 (torchvision topology)")
