"""NAS-Bench-101 networks from a 7x7 adjacency matrix and op list, built as ONNX.

Follows the official nasbench `model_builder.py`: stem Conv3x3(128)-BN-ReLU; 3 stacks of 3 cells; a
2x2/2 max-pool before stacks 2 and 3 doubles the channel budget; global average pool; dense layer.
Inside a cell the output channels are split among the vertices feeding the output
(`compute_vertex_channels`); interior edges truncate channels (Slice) when a source has one more
channel than its destination; edges from the cell input are 1x1 Conv-BN-ReLU projections; the output
concatenates its interior inputs and adds a projection of the cell input when input->output exists.
Ops: conv3x3-bn-relu, conv1x1-bn-relu (Conv-BN-ReLU), maxpool3x3 (stride 1, 'same').
The spec is pruned like nasbench's ModelSpec (vertices off every input->output path are removed).
"""

from __future__ import annotations

import json

import numpy as np
import onnx

from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
# op ids of NASLib's NB101 tuples (the key format of ../shared/data/nb101): checked against its flops
NASLIB_OP_IDS = {0: "input", 1: "output", 2: "maxpool3x3", 3: "conv1x1-bn-relu", 4: "conv3x3-bn-relu"}
MAX_VERTICES = 7
MAX_EDGES = 9


def _reachable(matrix: np.ndarray, start: int, forward: bool) -> set[int]:
    seen, stack = {start}, [start]
    while stack:
        v = stack.pop()
        nxt = np.nonzero(matrix[v] if forward else matrix[:, v])[0]
        for u in nxt:
            if int(u) not in seen:
                seen.add(int(u))
                stack.append(int(u))
    return seen


def prune(matrix, ops) -> tuple[np.ndarray, list[str]]:
    """Validate a spec and drop vertices not on an input->output path (nasbench ModelSpec._prune)."""
    try:
        m = np.array(matrix, dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError("NB101 matrix must be a square 0/1 integer matrix") from None
    ops = list(ops)
    n = len(ops)
    if m.ndim != 2 or m.shape != (n, n) or not 2 <= n <= MAX_VERTICES:
        raise InputError(f"NB101 matrix must be square with one row per op (2..7), got {m.shape} and {n} ops")
    if not np.isin(m, (0, 1)).all() or np.tril(m).any():
        raise InputError(
            "NB101 matrix must be 0/1 and strictly upper-triangular (a DAG in topological order)"
        )
    if ops[0] != "input" or ops[-1] != "output":
        raise InputError(f"NB101 ops must start with 'input' and end with 'output', got {ops}")
    bad = [op for op in ops[1:-1] if op not in OPS]
    if bad:
        raise InputError(f"unknown NB101 op(s) {bad}", hint=f"valid: {', '.join(OPS)}")
    keep = _reachable(m, 0, True) & _reachable(m, n - 1, False)
    if n - 1 not in keep:
        raise InputError("NB101 spec is invalid: the output is not reachable from the input")
    idx = sorted(keep)
    m, ops = m[np.ix_(idx, idx)], [ops[i] for i in idx]
    if m.sum() > MAX_EDGES:
        raise InputError(
            f"NB101 spec has {int(m.sum())} edges after pruning; the space allows at most {MAX_EDGES}"
        )
    return m, ops


def spec_from_naslib_key(key) -> tuple[np.ndarray, list[str]]:
    """(matrix, ops) from NASLib's 56-int tuple: 49 adjacency ints (row-major) + 7 op ids."""
    if isinstance(key, str):
        key = key.strip().strip("()[]")
        try:
            key = [int(t) for t in key.replace(",", " ").split()]
        except ValueError:
            raise InputError("NB101 NASLib key must be 56 integers") from None
    key = list(key)
    if len(key) != 56:
        raise InputError(f"NB101 NASLib key must be 56 integers (49 adjacency + 7 op ids), got {len(key)}")
    try:
        ops = [NASLIB_OP_IDS[int(i)] for i in key[49:]]
    except KeyError:
        raise InputError(f"NB101 op ids must be in {sorted(NASLIB_OP_IDS)}, got {key[49:]}") from None
    return np.array(key[:49], dtype=np.int64).reshape(7, 7), ops


def parse_spec(text: str) -> tuple[np.ndarray, list[str]]:
    """CLI form: JSON {"matrix": [[...]], "ops": [...]}, or the 56-int NASLib key."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            return np.array(obj["matrix"]), list(obj["ops"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"NB101 spec JSON needs 'matrix' and 'ops' ({exc})") from None
    return spec_from_naslib_key(text)


def vertex_channels(in_channels: int, out_channels: int, matrix: np.ndarray) -> list[int]:
    """nasbench `compute_vertex_channels`: split the output channels among the output's inputs."""
    n = matrix.shape[0]
    ch = [0] * n
    ch[0], ch[n - 1] = in_channels, out_channels
    if n == 2:
        return ch
    in_degree = matrix[1:].sum(axis=0)
    interior, correction = divmod(out_channels, int(in_degree[n - 1]))
    for v in range(1, n - 1):
        if matrix[v, n - 1]:
            ch[v] = interior + (1 if correction else 0)
            correction -= 1 if correction else 0
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            for dst in range(v + 1, n - 1):
                if matrix[v, dst]:
                    ch[v] = max(ch[v], ch[dst])
    return ch


def _conv_bn_relu(b: NetBuilder, x: str, cout: int, k: int, name: str) -> str:
    return b.conv_bn(x, cout, k, pad=(k - 1) // 2, name=name)


def _cell(b: NetBuilder, x: str, matrix: np.ndarray, ops: list[str], channels: int, name: str) -> str:
    n = matrix.shape[0]
    ch = vertex_channels(b.channels(x), channels, matrix)
    tensors = [x]
    concat_in = []
    for t in range(1, n - 1):
        add_in = []
        for src in range(1, t):
            if matrix[src, t]:
                y = tensors[src]
                if b.channels(y) > ch[t]:
                    y = b.slice_channels(y, ch[t], name=f"{name}.v{t}.truncate{src}")
                add_in.append(y)
        if matrix[0, t]:
            add_in.append(_conv_bn_relu(b, x, ch[t], 1, f"{name}.v{t}.proj"))
        v = b.add_all(add_in, name=f"{name}.v{t}.sum")
        op = ops[t]
        if op == "maxpool3x3":
            v = b.maxpool(v, 3, stride=1, pad=1, name=f"{name}.v{t}.maxpool")
        else:
            v = _conv_bn_relu(b, v, ch[t], 3 if op == "conv3x3-bn-relu" else 1, f"{name}.v{t}")
        tensors.append(v)
        if matrix[t, n - 1]:
            concat_in.append(v)
    if not concat_in:
        return _conv_bn_relu(b, x, channels, 1, f"{name}.out.proj")
    out = concat_in[0] if len(concat_in) == 1 else b.concat(concat_in, name=f"{name}.concat")
    if matrix[0, n - 1]:
        out = b.add(out, _conv_bn_relu(b, x, channels, 1, f"{name}.out.proj"), name=f"{name}.out")
    return out


def nb101(
    matrix,
    ops,
    *,
    seed: int = 0,
    num_classes: int = 10,
    input_size: int = 32,
    stem_channels: int = 128,
    stacks: int = 3,
    cells_per_stack: int = 3,
) -> onnx.ModelProto:
    """NB101 network for a (matrix, ops) cell spec on CIFAR-10 (32x32, 10 classes by default)."""
    m, ops = prune(matrix, ops)
    b = NetBuilder("nb101", (1, 3, input_size, input_size), seed=seed)
    x = _conv_bn_relu(b, "input", stem_channels, 3, "stem")
    channels = stem_channels
    for s in range(stacks):
        if s:
            x = b.maxpool(x, 2, stride=2, name=f"stack{s}.downsample")
            channels *= 2
        for c in range(cells_per_stack):
            x = _cell(b, x, m, ops, channels, f"stack{s}.cell{c}")
    x = b.flatten(b.global_avgpool(x, name="pool"), name="flatten")
    x = b.gemm(x, num_classes, name="classifier")
    return b.finish(x, doc=f"NAS-Bench-101 ops={ops} matrix={m.tolist()}")
