"""ResNet-18/50/101 with torchvision's topology (v1.5: the stride sits on the 3x3 conv), 224x224.

The last BatchNorm of each residual branch gets a small scale (RESIDUAL_GAMMA x U(0.8, 1.2)), in the
spirit of torchvision's `zero_init_residual` and of trained ResNets, whose last-BN scales are small: the
residual stream then stays O(1)..O(10) through 33 blocks instead of growing geometrically.
"""

from __future__ import annotations

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

RESIDUAL_GAMMA = 0.25
LAYOUTS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3)),
           "resnet101": ("bottleneck", (3, 4, 23, 3))}  # fmt: skip


def _basic(b: NetBuilder, x: str, planes: int, stride: int, name: str) -> str:
    y = b.conv_bn(x, planes, 3, stride=stride, name=f"{name}.1")
    y = b.conv_bn(y, planes, 3, relu=False, gamma=RESIDUAL_GAMMA, name=f"{name}.2")
    return _residual(b, x, y, stride, name)


def _bottleneck(b: NetBuilder, x: str, planes: int, stride: int, name: str) -> str:
    y = b.conv_bn(x, planes, 1, pad=0, name=f"{name}.1")
    y = b.conv_bn(y, planes, 3, stride=stride, name=f"{name}.2")
    y = b.conv_bn(y, planes * 4, 1, pad=0, relu=False, gamma=RESIDUAL_GAMMA, name=f"{name}.3")
    return _residual(b, x, y, stride, name)


def _residual(b: NetBuilder, x: str, y: str, stride: int, name: str) -> str:
    if b.shape(x) != b.shape(y):
        x = b.conv_bn(x, b.channels(y), 1, stride=stride, pad=0, relu=False, name=f"{name}.downsample")
    return b.relu(b.add(y, x, name=f"{name}.add"), name=f"{name}.relu")


def resnet(
    depth: int = 50, *, seed: int = 0, num_classes: int = 1000, input_size: int = 224
) -> onnx.ModelProto:
    """ResNet-18, -50 or -101 (batch 1, 3 x input_size x input_size)."""
    if f"resnet{depth}" not in LAYOUTS:
        raise InputError(f"ResNet depth must be 18, 50 or 101, got {depth!r}")
    kind, blocks = LAYOUTS[f"resnet{depth}"]
    unit = _basic if kind == "basic" else _bottleneck
    b = NetBuilder(f"resnet{depth}", (1, 3, input_size, input_size), seed=seed)
    x = b.conv_bn("input", 64, 7, stride=2, pad=3, name="stem")
    x = b.maxpool(x, 3, stride=2, pad=1, name="stem.maxpool")
    for stage, n in enumerate(blocks):
        planes = 64 * 2**stage
        for i in range(n):
            x = unit(b, x, planes, 2 if (i == 0 and stage > 0) else 1, f"layer{stage + 1}.{i}")
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    x = b.gemm(x, num_classes, name="fc")
    return b.finish(x, doc=f"ResNet-{depth} (torchvision topology)")


def resnet18(*, seed: int = 0, **kw) -> onnx.ModelProto:
    return resnet(18, seed=seed, **kw)


def resnet50(*, seed: int = 0, **kw) -> onnx.ModelProto:
    return resnet(50, seed=seed, **kw)


def resnet101(*, seed: int = 0, **kw) -> onnx.ModelProto:
    return resnet(101, seed=seed, **kw)
