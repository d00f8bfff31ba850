"""FBNet-space networks (HW-NAS-Bench's CIFAR-100 configuration) from a 22-op list, built as ONNX.

Follows HW-NAS-Bench `fbnet_models/model_infer.py` (`FBNet_Infer`, dataset cifar100): stem
Conv3x3(16, stride 1)-BN-ReLU; 22 blocks in stages of [1,4,4,4,4,4,1] layers with channels
[16,24,32,64,112,184,352] and first-layer strides [1,1,2,2,1,2,1]; head Conv1x1(1504)-BN-ReLU;
global average pool; linear (100 classes).

Block kK_eE[_g2] (ConvBlock): Conv1x1(C_in*E, groups g)-BN-ReLU, channel shuffle when g>1,
depthwise ConvKxK(stride)-BN-ReLU, Conv1x1(C_out, groups g)-BN, plus the identity when C_in == C_out
and stride 1. 'skip' is the identity when C_in == C_out and stride 1, otherwise HW-NAS-Bench's
Conv1x1(C_out, stride)-BN-ReLU.
"""

from __future__ import annotations

import re

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
LAYERS = (1, 4, 4, 4, 4, 4, 1)
CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STRIDES = (1, 1, 2, 2, 1, 2, 1)
STEM_CHANNELS = 16
HEAD_CHANNELS = 1504
NUM_BLOCKS = sum(LAYERS)
_OP = re.compile(r"^k([35])_e([136])(_g2)?$")


def parse_ops(ops) -> list[str]:
    """Accept a list of 22 op names / indices (0..8) or one space/comma separated string."""
    if isinstance(ops, str):
        ops = ops.replace(",", " ").split()
    try:
        ops = list(ops)
    except TypeError:
        raise InputError("FBNet ops must be a list of 22 op names") from None
    if len(ops) != NUM_BLOCKS:
        raise InputError(f"FBNet needs {NUM_BLOCKS} ops, got {len(ops)}", hint=f"ops: {' '.join(OPS)}")
    out = []
    for op in ops:
        if isinstance(op, int) or (isinstance(op, str) and op.isdigit()):
            if not 0 <= int(op) < len(OPS):
                raise InputError(f"FBNet op index {op} out of range 0..{len(OPS) - 1}")
            op = OPS[int(op)]
        if op not in OPS:
            raise InputError(f"unknown FBNet op {op!r}", hint=f"valid: {', '.join(OPS)}")
        out.append(op)
    return out


def _block(b: NetBuilder, x: str, op: str, cout: int, stride: int, name: str) -> str:
    cin = b.channels(x)
    if op == "skip":
        if cin == cout and stride == 1:
            return x
        return b.conv_bn(x, cout, 1, stride=stride, pad=0, name=f"{name}.skip")
    k, e, g2 = _OP.match(op).groups()
    k, e, group = int(k), int(e), 2 if g2 else 1
    mid = cin * e
    y = b.conv_bn(x, mid, 1, group=group, pad=0, name=f"{name}.pw1")
    if group > 1:
        y = b.channel_shuffle(y, group, name=f"{name}.shuffle")
    y = b.conv_bn(y, mid, k, stride=stride, group=mid, pad=(k - 1) // 2, name=f"{name}.dw")
    y = b.conv_bn(y, cout, 1, group=group, pad=0, relu=False, name=f"{name}.pw2")
    if cin == cout and stride == 1:
        y = b.add(y, x, name=f"{name}.add")
    return y


def fbnet(ops, *, seed: int = 0, num_classes: int = 100, input_size: int = 32) -> onnx.ModelProto:
    """FBNet network for 22 ops (HW-NAS-Bench CIFAR-100 setting: 32x32 input, 100 classes)."""
    ops = parse_ops(ops)
    b = NetBuilder("fbnet", (1, 3, input_size, input_size), seed=seed)
    x = b.conv_bn("input", STEM_CHANNELS, 3, pad=1, name="stem")
    i = 0
    for n, cout, stride in zip(LAYERS, CHANNELS, STRIDES, strict=True):
        for j in range(n):
            x = _block(b, x, ops[i], cout, stride if j == 0 else 1, f"blocks.{i}")
            i += 1
    x = b.conv_bn(x, HEAD_CHANNELS, 1, pad=0, name="head")
    x = b.flatten(b.global_avgpool(x, name="pool"), name="flatten")
    x = b.gemm(x, num_classes, name="classifier")
    return b.finish(x, doc=f"FBNet (HW-NAS-Bench CIFAR-100) {' '.join(ops)}")
