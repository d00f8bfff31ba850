"""EDSR baseline super-resolution (Lim et al. 2017; the official `EDSR-PyTorch` baseline), as ONNX.

sub_mean -> head Conv3x3(64) -> 16 x [Conv3x3-ReLU-Conv3x3, x res_scale, + skip] -> Conv3x3 -> + head
-> upsampler Conv3x3(64*r^2) + PixelShuffle(r) (DepthToSpace, CRD) -> Conv3x3(3) -> add_mean.
Convs carry biases (as in EDSR) and use PyTorch's default Conv2d init, which EDSR keeps: Kaiming
with a = sqrt(5), i.e. std = sqrt(1/3) / sqrt(fan_in) (drawn normal here), bias ~ U(+-1/sqrt(fan_in)).
MeanShift with rgb_std = 1 is a per-channel Sub/Add of
rgb_range * DIV2K mean (EDSR implements it as a frozen 1x1 conv; the arithmetic is identical).
"""

from __future__ import annotations

import math

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
TORCH_DEFAULT_GAIN = math.sqrt(1.0 / 3.0)


def edsr(
    *,
    seed: int = 0,
    scale: int = 2,
    n_resblocks: int = 16,
    n_feats: int = 64,
    res_scale: float = 1.0,
    rgb_range: float = 255.0,
    input_size: int | tuple[int, int] = 64,
) -> onnx.ModelProto:
    """EDSR baseline (x2 by default; scale 2, 3 or 4 use one PixelShuffle, as in EDSR's Upsampler)."""
    if scale not in (2, 3, 4):
        raise InputError(f"EDSR scale must be 2, 3 or 4, got {scale!r}")
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    b = NetBuilder(f"edsr_x{scale}", (1, 3, h, w), seed=seed)
    mean = [rgb_range * m for m in DIV2K_MEAN]
    x = b.shift("input", mean, op="Sub", name="sub_mean")
    x = head = b.conv(x, n_feats, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name="head")
    for i in range(n_resblocks):
        y = b.relu(
            b.conv(x, n_feats, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name=f"body.{i}.conv1"),
            name=f"body.{i}.relu",
        )
        y = b.scale(
            b.conv(y, n_feats, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name=f"body.{i}.conv2"),
            res_scale,
            name=f"body.{i}.scale",
        )
        x = b.add(y, x, name=f"body.{i}.add")
    x = b.add(
        b.conv(x, n_feats, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name="body.conv"), head, name="body.add"
    )
    steps = [(2, 4)] * 2 if scale == 4 else [(scale, scale * scale)]
    for j, (r, mult) in enumerate(steps):
        x = b.conv(x, n_feats * mult, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name=f"tail.up{j}.conv")
        x = b.depth_to_space(x, r, name=f"tail.up{j}.shuffle")
    x = b.conv(x, 3, 3, bias=True, gain=TORCH_DEFAULT_GAIN, name="tail.conv")
    x = b.shift(x, mean, op="Add", name="add_mean")
    return b.finish(x, doc=f"EDSR baseline x{scale} ({n_resblocks} resblocks, {n_feats} feats)")
