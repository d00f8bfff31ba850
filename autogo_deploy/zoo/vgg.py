"""VGG-16 with BatchNorm (torchvision `vgg16_bn` topology), 224x224.

torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at 224x224 and is left out; Dropout is an
inference no-op and is left out.
"""

from __future__ import annotations

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_bn(*, seed: int = 0, num_classes: int = 1000, input_size: int = 224) -> onnx.ModelProto:
    """VGG-16-BN: 13 Conv3x3-BN-ReLU in 5 blocks with 2x2 max-pools, then 4096-4096-classes."""
    if input_size != 224:
        raise InputError("vgg16_bn is built for 224x224 input (its classifier expects 512x7x7)")
    b = NetBuilder("vgg16_bn", (1, 3, input_size, input_size), seed=seed)
    x, conv, pool = "input", 0, 0
    for v in CONFIG_D:
        if v == "M":
            x = b.maxpool(x, 2, stride=2, name=f"features.pool{pool}")
            pool += 1
        else:
            x = b.conv_bn(x, v, 3, name=f"features.conv{conv}")
            conv += 1
    x = b.flatten(x, name="flatten")
    x = b.relu(b.gemm(x, 4096, name="classifier.0", gain=2**0.5), name="classifier.0.relu")
    x = b.relu(b.gemm(x, 4096, name="classifier.1", gain=2**0.5), name="classifier.1.relu")
    x = b.gemm(x, num_classes, name="classifier.2")
    return b.finish(x, doc="VGG-16-BN (torchvision topology)")
