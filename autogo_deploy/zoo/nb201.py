"""NAS-Bench-201 networks from an arch string, built as ONNX.

Macro skeleton (NB201 `TinyNetwork`, C=16, N=5): 3x3 stem conv + BN; 5 cells at 16 ch; residual
reduction block (ResNetBasicblock, stride 2: ReLU-Conv-BN x2, shortcut AvgPool2x2 + Conv1x1); 5 cells
at 32 ch; reduction; 5 cells at 64 ch; BN-ReLU; global average pool; linear classifier.

Cell (NB201 `InferCell`): node j = sum over i<j of op_{i->j}(node i); the cell output is node 3.
Ops: nor_conv_kxk = ReLU-Conv-BN, avg_pool_3x3 (stride 1, pad 1, count_include_pad=False),
skip_connect = identity, none = zero.

How 'none' is emitted. NB201 computes every edge (its `Zero` op is `x.mul(0.)`) and its FLOP counts
include every conv of the cell, even one whose result only feeds 'none' edges (the 491 reference
figures fit that exactly). In ONNX a 'none' edge is simply left out of its node's sum (x + 0 = x),
except where leaving it out would drop computation NB201 performs:
- a node whose inputs are all 'none' is the zero tensor, emitted as `Mul(first source, 0)`; the ops
  that read it stay (ReLU-Conv-BN of zero is BN's constant, not zero);
- a node whose outgoing edges are all 'none' still feeds its first 'none' edge as `Mul(node, 0)`, so
  its ops are not dead code (every cell op stays reachable from the output).
The result computes exactly what NB201 computes, and MACs match NB201 op-for-op.

Arch enumeration. The official NB201 index (0..15624) is a shuffled order stored inside the
benchmark file, not a formula; `arch_from_ordinal` / `ordinal_from_arch` give the product order of
NB201's `CellStructure.gen_all` (edges in arch-string order, ops in NB201 order, the last edge
fastest), which enumerates the same 15,625 archs. `index_from_arch` / `arch_from_index` give the
official index where ../shared/data lists it (10,000 of 15,625) and raise InputError otherwise.
"""

from __future__ import annotations

import functools
import re

import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target) in arch-string order
NUM_ARCHS = len(OPS) ** len(EDGES)
DATASETS = {"cifar10": (10, 32), "cifar100": (100, 32), "ImageNet16-120": (120, 16)}

_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


def parse_arch(arch: str) -> tuple[str, ...]:
    """Validate an NB201 arch string; return its six ops in arch-string (EDGES) order."""
    if not isinstance(arch, str):
        raise InputError(f"NB201 arch must be a string like {_EXAMPLE}")
    nodes = arch.strip().split("+")
    if len(nodes) != 3:
        raise InputError(
            f"bad NB201 arch string {arch!r}: expected 3 nodes separated by '+'", hint=f"e.g. {_EXAMPLE}"
        )
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise InputError(f"bad NB201 arch string {arch!r}: node {j} must look like |op~0|...|")
        tokens = node[1:-1].split("|")
        if len(tokens) != j:
            raise InputError(f"bad NB201 arch string {arch!r}: node {j} needs {j} inputs, got {len(tokens)}")
        for i, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m or int(m.group(2)) != i:
                raise InputError(f"bad NB201 arch string {arch!r}: token {tok!r} should be 'op~{i}'")
            if m.group(1) not in OPS:
                raise InputError(
                    f"unknown NB201 op {m.group(1)!r} in {arch!r}", hint=f"valid: {', '.join(OPS)}"
                )
            ops.append(m.group(1))
    return tuple(ops)


def arch_string(ops: tuple[str, ...] | list[str]) -> str:
    """The NB201 arch string of six ops given in EDGES order."""
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise InputError(f"need {len(EDGES)} ops from {', '.join(OPS)}, got {list(ops)}")
    parts = [[], [], []]
    for (src, dst), op in zip(EDGES, ops, strict=True):
        parts[dst - 1].append(f"{op}~{src}")
    return "+".join("|" + "|".join(p) + "|" for p in parts)


def arch_from_ordinal(i: int) -> str:
    """Arch number i (0..15624) in NB201's gen_all product order (NOT the official shuffled index)."""
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < NUM_ARCHS:
        raise InputError(f"NB201 ordinal must be an integer in 0..{NUM_ARCHS - 1}, got {i!r}")
    digits = []
    for _ in EDGES:
        i, d = divmod(i, len(OPS))
        digits.append(OPS[d])
    return arch_string(tuple(reversed(digits)))


def ordinal_from_arch(arch: str) -> int:
    """Inverse of arch_from_ordinal."""
    value = 0
    for op in parse_arch(arch):
        value = value * len(OPS) + OPS.index(op)
    return value


@functools.cache
def official_indices() -> dict[str, int]:
    """arch string -> official NB201 index, for the archs listed in ../shared/data (10,000 of 15,625)."""
    import csv

    from autogo_deploy.paths import shared_data_dir

    out: dict[str, int] = {}
    for fname in ("nb201_accuracy_train10k.csv", "nb201_flops_params_491.csv"):
        path = shared_data_dir() / "nb201" / fname
        if path.is_file():
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    out[row["arch_str"]] = int(row["nb201_index"])
    return out


def index_from_arch(arch: str) -> int:
    """Official NB201 index of `arch`, where ../shared/data lists it (else InputError)."""
    arch = arch_string(parse_arch(arch))
    index = official_indices().get(arch)
    if index is None:
        raise InputError(
            f"the official NB201 index of {arch} is not in the shared data",
            hint="only 10,000 of the 15,625 indices are listed; use ordinal_from_arch for a stable number",
        )
    return index


def arch_from_index(index: int) -> str:
    """Arch with official NB201 index `index`, where ../shared/data lists it (else InputError)."""
    for arch, i in official_indices().items():
        if i == index:
            return arch
    raise InputError(
        f"official NB201 index {index!r} is not in the shared data",
        hint="only 10,000 of the 15,625 indices are listed; arch_from_ordinal enumerates all archs",
    )


def _relu_conv_bn(b: NetBuilder, x: str, cout: int, k: int, name: str, stride: int = 1) -> str:
    y = b.relu(x, name=f"{name}.relu")
    y = b.conv(y, cout, k, stride=stride, pad=(k - 1) // 2, name=f"{name}.conv")
    return b.bn(y, name=f"{name}.bn")


def _edge(b: NetBuilder, op: str, x: str, name: str) -> str:
    c = b.channels(x)
    if op == "nor_conv_3x3":
        return _relu_conv_bn(b, x, c, 3, name)
    if op == "nor_conv_1x1":
        return _relu_conv_bn(b, x, c, 1, name)
    if op == "avg_pool_3x3":
        return b.avgpool(x, 3, stride=1, pad=1, count_include_pad=False, name=f"{name}.pool")
    if op == "skip_connect":
        return x
    return b.scale(x, 0.0, name=f"{name}.zero")  # 'none'


def _keeps_alive(ops: tuple[str, ...], src: int, dst: int) -> bool:
    """True for the first outgoing edge of a node whose outgoing edges are all 'none'."""
    out = [(s, d) for (s, d), op in zip(EDGES, ops, strict=True) if s == src]
    if any(op != "none" for (s, _), op in zip(EDGES, ops, strict=True) if s == src):
        return False
    return out[0] == (src, dst)


def _cell(b: NetBuilder, x: str, ops: tuple[str, ...], name: str) -> str:
    nodes = [x]
    for j in (1, 2, 3):
        terms = []
        first_none = None
        for (src, dst), op in zip(EDGES, ops, strict=True):
            if dst != j:
                continue
            if op != "none" or _keeps_alive(ops, src, dst):
                terms.append(_edge(b, op, nodes[src], f"{name}.edge{src}{dst}"))
            elif first_none is None:
                first_none = src
        if not terms:  # every input is 'none': the zero tensor
            terms.append(_edge(b, "none", nodes[first_none], f"{name}.edge{first_none}{j}"))
        nodes.append(b.add_all(terms, name=f"{name}.node{j}"))
    return nodes[3]


def _reduction(b: NetBuilder, x: str, cout: int, name: str) -> str:
    a = _relu_conv_bn(b, x, cout, 3, f"{name}.conv_a", stride=2)
    a = _relu_conv_bn(b, a, cout, 3, f"{name}.conv_b")
    r = b.avgpool(x, 2, stride=2, pad=0, count_include_pad=True, name=f"{name}.shortcut.pool")
    r = b.conv(r, cout, 1, pad=0, name=f"{name}.shortcut.conv")
    return b.add(r, a, name=f"{name}.add")


def nb201(
    arch: str,
    *,
    num_classes: int = 10,
    input_size: int = 32,
    seed: int = 0,
    dataset: str | None = None,
    channels: int = 16,
    cells_per_stage: int = 5,
) -> onnx.ModelProto:
    """NB201 network for `arch` (10/100/120 classes; 32x32 input, 16x16 for ImageNet16-120).

    dataset ('cifar10', 'cifar100', 'ImageNet16-120') sets num_classes and input_size together.
    """
    ops = parse_arch(arch)
    if dataset is not None:
        if dataset not in DATASETS:
            raise InputError(f"unknown NB201 dataset {dataset!r}", hint=f"valid: {', '.join(DATASETS)}")
        num_classes, input_size = DATASETS[dataset]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4 or input_size % 4:
        raise InputError(f"input_size must be a positive multiple of 4, got {input_size!r}")
    b = NetBuilder("nb201", (1, 3, input_size, input_size), seed=seed)
    x = b.bn(b.conv("input", channels, 3, pad=1, name="stem.conv"), name="stem.bn")
    index = 0
    for stage in range(3):
        c = channels * 2**stage
        if stage:
            x = _reduction(b, x, c, f"cells.{index}")
            index += 1
        for _ in range(cells_per_stage):
            x = _cell(b, x, ops, f"cells.{index}")
            index += 1
    x = b.relu(b.bn(x, name="lastact.bn"), name="lastact.relu")
    x = b.flatten(b.global_avgpool(x, name="pool"), name="flatten")
    x = b.gemm(x, num_classes, name="classifier")
    return b.finish(x, doc=f"NAS-Bench-201 {arch} classes={num_classes} input={input_size}")
