"""Reference model zoo: networks built directly as ONNX with seeded Kaiming-normal weights.

    from autogo_deploy import zoo
    zoo.names()                                   # ['nb201', 'nb101', 'fbnet', 'resnet18', ...]
    model = zoo.build("resnet50", seed=0)         # onnx.ModelProto
    model = zoo.build("nb201", arch="|nor_conv_3x3~0|+|...|", num_classes=100)
    model = zoo.nb201(arch, num_classes=10, input_size=32, seed=0)

Every model: batch 1, float32, opset 17, graph input "input", graph output "output".
Same arguments and seed give a byte-identical model.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.edsr import edsr
from autogo_deploy.zoo.fbnet import fbnet
from autogo_deploy.zoo.mobilenet import mobilenet_v2
from autogo_deploy.zoo.nb101 import nb101
from autogo_deploy.zoo.nb201 import nb201
from autogo_deploy.zoo.resnet import resnet18, resnet50, resnet101
from autogo_deploy.zoo.vgg import vgg16_bn

__all__ = [
    "Entry",
    "build",
    "catalog",
    "edsr",
    "fbnet",
    "mobilenet_v2",
    "names",
    "nb101",
    "nb201",
    "resnet18",
    "resnet50",
    "resnet101",
    "vgg16_bn",
]

# Defaults for the arch-parameterised families (used when no arch is given).
NB201_DEFAULT = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
NB101_DEFAULT = (  # the example cell of the nasbench README
    [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [
        "input",
        "conv1x1-bn-relu",
        "conv3x3-bn-relu",
        "conv3x3-bn-relu",
        "conv3x3-bn-relu",
        "maxpool3x3",
        "output",
    ],
)
FBNET_DEFAULT = (
    "k3_e1 " + "k3_e3 " * 4 + "k5_e3 " * 4 + "k3_e6 " * 4 + "k5_e6 " * 4 + "k5_e6 " * 4 + "k3_e6"
).split()


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    description: str
    input_shape: tuple[int, ...]
    arch_kind: str | None  # what --arch takes, None when the network has no arch parameter


_ENTRIES = (
    Entry("nb201", "NAS-Bench-201", "NB201 cell network, CIFAR skeleton (10/100/120 classes)", (1, 3, 32, 32),
          "NB201 arch string"),
    Entry("nb101", "NAS-Bench-101", "NB101 cell network, 128-ch stem, 3x3 cells (10 classes)", (1, 3, 32, 32),
          "NB101 JSON {matrix, ops} or 56-int key"),
    Entry("fbnet", "FBNet", "FBNet space, HW-NAS-Bench CIFAR-100 setting (100 classes)", (1, 3, 32, 32),
          "22 FBNet ops"),
    Entry("resnet18", "ResNet", "ResNet-18 (torchvision), 1000 classes", (1, 3, 224, 224), None),
    Entry("resnet50", "ResNet", "ResNet-50 v1.5 (torchvision), 1000 classes", (1, 3, 224, 224), None),
    Entry("resnet101", "ResNet", "ResNet-101 v1.5 (torchvision), 1000 classes", (1, 3, 224, 224), None),
    Entry("vgg16_bn", "VGG", "VGG-16 with BatchNorm (torchvision), 1000 classes", (1, 3, 224, 224), None),
    Entry("mobilenet_v2", "MobileNet", "MobileNetV2 1.0 (torchvision), 1000 classes", (1, 3, 224, 224), None),
    Entry("edsr", "EDSR", "EDSR baseline x2 super-resolution (16 resblocks, 64 ch)", (1, 3, 64, 64), None),
)  # fmt: skip
_BY_NAME = {e.name: e for e in _ENTRIES}


def names() -> list[str]:
    """Names accepted by build(), in catalog order."""
    return [e.name for e in _ENTRIES]


def catalog() -> list[Entry]:
    return list(_ENTRIES)


def build(name: str, *, seed: int = 0, arch=None, **kw) -> onnx.ModelProto:
    """Build zoo network `name`. `arch`: NB201 string, NB101 (matrix, ops) / JSON / key, FBNet op list."""
    entry = _BY_NAME.get(name)
    if entry is None:
        raise InputError(f"unknown zoo model {name!r}", hint=f"available: {', '.join(names())}")
    if arch is not None and entry.arch_kind is None:
        raise InputError(f"zoo model {name!r} takes no arch")
    try:
        if name == "nb201":
            return nb201(NB201_DEFAULT if arch is None else arch, seed=seed, **kw)
        if name == "nb101":
            from autogo_deploy.zoo.nb101 import parse_spec

            if arch is None:
                arch = NB101_DEFAULT
            if isinstance(arch, str):
                matrix, ops = parse_spec(arch)
            elif isinstance(arch, dict) and {"matrix", "ops"} <= arch.keys():
                matrix, ops = arch["matrix"], arch["ops"]
            elif isinstance(arch, tuple | list) and len(arch) == 2:
                matrix, ops = arch
            else:
                raise InputError(
                    "NB101 arch must be (matrix, ops), {'matrix', 'ops'} or a JSON/NASLib-key string"
                )
            return nb101(matrix, ops, seed=seed, **kw)
        if name == "fbnet":
            return fbnet(FBNET_DEFAULT if arch is None else arch, seed=seed, **kw)
        return globals()[name](seed=seed, **kw)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise InputError(f"zoo model {name!r}: {exc}") from None
        raise
