"""Analytical cost model of a DaVinci-style cube-unit NPU (the `npu-sim` target). Pure Python.

The unit of cost is a *fused group*: the ops one kernel launch runs (TVM's FuseOps groups, or the
same rule applied directly to the ONNX graph by `npu_fuse`). Per group:

    compute_s = max(cube_s, vector_s)            the cube and vector pipelines overlap in a kernel
    cube_s    = cube_cycles / (cores * clock)    16x16x16 fp16 MACs per cycle per core; M, K and N
                                                 (conv: Ho*Wo, Cin*kh*kw, Cout) padded up to 16
    vector_s  = lane_ops / (lanes * cores * clock)    elementwise/pool/norm, C padded to 16 (NC1HWC0)
    memory_s  = dram_bytes / dram_bandwidth      fp16 tensors in the padded on-chip layouts; a cube
                                                 op whose input and weights both exceed half of L1
                                                 re-reads one of them once per tile of the other
    latency   = max(compute_s, memory_s) + launch_overhead
    energy    = MACs*e_mac + lane_ops*e_vec + L0/UB/L1 bytes*e_sram + DRAM bytes*e_dram
                + static_power * latency

Intermediates inside a group stay on chip (that is what fusion buys). Every constant comes from
the target file (`targets/npu-sim.toml`, [backend] constants, each with its source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CUBE_KINDS = ("conv", "conv_transpose", "matmul")
# Canonical op names (TVM's PrimFunc names without numeric suffix and "tir_") that use the
# vector unit's special-function path; they cost `transcendental_lane_ops` per element.
TRANSCENDENTAL = frozenset({"sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "erf", "power", "softplus"})

CONSTANT_KEYS = (
    "clock_ghz",
    "cores",
    "cube_m",
    "cube_k",
    "cube_n",
    "channel_align",
    "vector_lanes",
    "transcendental_lane_ops",
    "bytes_per_element",
    "l1_kib",
    "l0a_kib",
    "l0b_kib",
    "l0c_kib",
    "ub_kib",
    "dram_gbps",
    "launch_overhead_us",
    "e_mac_pj",
    "e_vector_op_pj",
    "e_l0_pj_per_byte",
    "e_ub_pj_per_byte",
    "e_l1_pj_per_byte",
    "process_energy_scale",
    "e_dram_pj_per_byte",
    "static_power_w",
)


@dataclass(frozen=True)
class NpuConstants:
    """The hardware constants of the model (see targets/npu-sim.toml for values and sources)."""

    clock_ghz: float
    cores: int
    cube_m: int
    cube_k: int
    cube_n: int
    channel_align: int
    vector_lanes: int
    transcendental_lane_ops: float
    bytes_per_element: int
    l1_kib: float
    l0a_kib: float
    l0b_kib: float
    l0c_kib: float
    ub_kib: float
    dram_gbps: float
    launch_overhead_us: float
    e_mac_pj: float
    e_vector_op_pj: float
    e_l0_pj_per_byte: float
    e_ub_pj_per_byte: float
    e_l1_pj_per_byte: float
    process_energy_scale: float
    e_dram_pj_per_byte: float
    static_power_w: float
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> NpuConstants:
        """From a target's [backend] table: `constants.<key> = {value, unit, source}` (or a bare number)."""
        table = options.get("constants", options)
        missing = [k for k in CONSTANT_KEYS if k not in table]
        if missing:
            raise ValueError(f"npu-sim constants missing: {', '.join(missing)}")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key in CONSTANT_KEYS:
            entry = table[key]
            value = entry["value"] if isinstance(entry, dict) else entry
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"npu-sim constant {key} must be a non-negative number, got {value!r}")
            values[key] = value
            if isinstance(entry, dict) and entry.get("source"):
                sources[key] = str(entry["source"])
        for key in (
            "cores",
            "cube_m",
            "cube_k",
            "cube_n",
            "channel_align",
            "vector_lanes",
            "bytes_per_element",
        ):
            values[key] = int(values[key])
            if values[key] < 1:
                raise ValueError(f"npu-sim constant {key} must be >= 1")
        return cls(**values, sources=sources)

    @classmethod
    def default(cls) -> NpuConstants:
        """The constants of the packaged `npu-sim` target."""
        import tomllib

        from autogo_deploy.paths import targets_dir

        with (Path(targets_dir()) / "npu-sim.toml").open("rb") as fh:
            return cls.from_options(tomllib.load(fh)["backend"])

    @property
    def cube_macs_per_cycle(self) -> int:
        return self.cube_m * self.cube_k * self.cube_n


@dataclass(frozen=True)
class Tensor:
    """A tensor as the model sees it: its logical shape and whether it is a weight (constant)."""

    shape: tuple[int, ...]
    const: bool = False


@dataclass
class Op:
    """One primitive op inside a group.

    kind: "conv" | "conv_transpose" | "matmul" (cube unit), "vector", or "view" (no data movement).
    lane_ops: vector work, one lane-operation per instance of each loop nest of the op (for TVM,
    each TIR block's iteration space); unused for cube ops.
    external: per input, whether it is read from DRAM (True) or produced inside the group.
    """

    name: str
    kind: str
    inputs: list[Tensor]
    output: Tensor
    lane_ops: int = 0
    groups: int = 1
    external: tuple[bool, ...] = ()


@dataclass
class Group:
    """A fused kernel: its ops, the tensors it reads from and writes to DRAM."""

    name: str
    ops: list[Op]
    inputs: list[Tensor]
    outputs: list[Tensor]
    nodes: list[str] = field(default_factory=list)  # ONNX node names (onnx-rules fusion only)


def _ceil_to(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def padded_elements(shape: tuple[int, ...], align: int) -> int:
    """Elements in the NPU's on-chip layout: NC1HWC0 pads C (axis 1) of 4-D tensors to `align`;
    2-D matrices use fractal tiles (both axes padded); other ranks pad the last axis."""
    dims = [max(1, int(d)) for d in shape] or [1]
    if len(dims) == 4:
        dims[1] = _ceil_to(dims[1], align)
    elif len(dims) == 2:
        dims = [_ceil_to(dims[0], align), _ceil_to(dims[1], align)]
    else:
        dims[-1] = _ceil_to(dims[-1], align)
    return math.prod(dims)


def tensor_bytes(t: Tensor, c: NpuConstants) -> int:
    return padded_elements(t.shape, c.channel_align) * c.bytes_per_element


def _conv_weight_bytes(w: tuple[int, ...], c: NpuConstants) -> int:
    """Fractal-Z weights: Cin/g and Cout padded to the cube size, times the kernel window."""
    out_ch, cin_g = w[0], w[1]
    window = math.prod(w[2:]) if len(w) > 2 else 1
    return _ceil_to(out_ch, c.cube_n) * _ceil_to(cin_g, c.cube_k) * window * c.bytes_per_element


def cube_cycles(op: Op, c: NpuConstants) -> tuple[int, int]:
    """(cube cycles summed over cores, useful MACs) of a conv/matmul op."""
    m_tile, k_tile, n_tile = c.cube_m, c.cube_k, c.cube_n
    if op.kind == "matmul":
        a, b, out = op.inputs[0].shape, op.inputs[1].shape, op.output.shape
        m = a[-2] if len(a) >= 2 else 1
        k = a[-1]
        n = b[-1] if len(b) >= 2 else 1
        batch = math.prod(out[:-2]) if len(out) > 2 else 1
        cycles = batch * -(-m // m_tile) * -(-k // k_tile) * -(-n // n_tile)
        return cycles, batch * m * k * n
    data, weight, out = op.inputs[0].shape, op.inputs[1].shape, op.output.shape
    window = math.prod(weight[2:]) if len(weight) > 2 else 1
    if op.kind == "conv_transpose":  # scatter form: every input pixel times Cin x (Cout/g * window)
        n_batch, cin = data[0], data[1]
        pixels = n_batch * math.prod(data[2:])
        cout_g = weight[1]
        g = max(1, op.groups)
        cycles = g * -(-pixels // m_tile) * -(-(cin // g) // k_tile) * -(-(cout_g * window) // n_tile)
        return cycles, pixels * (cin // g) * cout_g * window * g
    n_batch, cin = data[0], data[1]
    cout, cin_g = weight[0], weight[1]
    g = max(1, cin // max(1, cin_g))
    pixels = n_batch * math.prod(out[2:])
    macs = pixels * cout * cin_g * window
    if cin_g == 1 and g > 1:
        # Depthwise: the cube runs it with diagonal 16x16 weight blocks (one useful MAC per row),
        # channels in blocks of 16: pixels/16 x window x C/16 cube cycles.
        cycles = -(-pixels // m_tile) * window * -(-cout // n_tile)
        return cycles, macs
    cycles = g * -(-pixels // m_tile) * -(-cin_g // k_tile) * window * -(-(cout // g) // n_tile)
    return cycles, macs


def _tiled_traffic(act_bytes: int, weight_bytes: int, l1_bytes: float) -> int:
    """DRAM bytes to feed a cube op: each operand once if one half of L1 holds the smaller one,
    else the cheaper of re-reading the activations once per L1/2 chunk of weights or vice versa."""
    half = l1_bytes / 2
    if act_bytes + weight_bytes <= l1_bytes or min(act_bytes, weight_bytes) <= half:
        return act_bytes + weight_bytes
    by_weight_chunks = act_bytes * math.ceil(weight_bytes / half) + weight_bytes
    by_act_chunks = weight_bytes * math.ceil(act_bytes / half) + act_bytes
    return min(by_weight_chunks, by_act_chunks)


def _op_lane_ops(op: Op, c: NpuConstants) -> float:
    out = op.output.shape
    elems = max(1, math.prod(out)) if out else 1
    ratio = padded_elements(out, c.channel_align) / elems
    # every output element costs at least one lane-op (copies, layout changes go through the UB)
    work = max(op.lane_ops, elems) * ratio
    if op.name in TRANSCENDENTAL:
        work *= c.transcendental_lane_ops
    return work


def cost_group(group: Group, c: NpuConstants) -> dict[str, Any]:
    """Latency, energy and the breakdown of one fused group."""
    kinds = {op.kind for op in group.ops}
    if kinds <= {"view"}:
        return _result(group, "view", 0.0, 0.0, 0.0, 0.0, 0.0, {}, 0, 0, 0, 0.0, 0)
    clock_hz = c.clock_ghz * 1e9
    cycles = macs = 0
    lane_ops = 0.0
    weight_bytes_in_cube = 0
    act_reread_extra = 0
    l1_bytes = c.l1_kib * 1024
    for op in group.ops:
        if op.kind in CUBE_KINDS:
            op_cycles, op_macs = cube_cycles(op, c)
            cycles += op_cycles
            macs += op_macs
            ext = op.external or tuple(True for _ in op.inputs)
            act = tensor_bytes(op.inputs[0], c) if ext[0] else 0
            w = op.inputs[1]
            wbytes = (
                _conv_weight_bytes(w.shape, c)
                if op.kind != "matmul" and len(w.shape) >= 2
                else tensor_bytes(w, c)
            )
            wbytes = wbytes if (len(ext) < 2 or ext[1]) else 0
            weight_bytes_in_cube += wbytes
            act_reread_extra += _tiled_traffic(act, wbytes, l1_bytes) - act - wbytes
        elif op.kind == "vector":
            lane_ops += _op_lane_ops(op, c)
    cube_in = {id(op.inputs[1]) for op in group.ops if op.kind in CUBE_KINDS and len(op.inputs) > 1}
    dram_bytes = act_reread_extra + weight_bytes_in_cube
    dram_bytes += sum(tensor_bytes(t, c) for t in group.inputs if id(t) not in cube_in)
    dram_bytes += sum(tensor_bytes(t, c) for t in group.outputs)
    cube_s = cycles / (c.cores * clock_hz)
    vector_s = lane_ops / (c.vector_lanes * c.cores * clock_hz)
    compute_s = max(cube_s, vector_s)
    memory_s = dram_bytes / (c.dram_gbps * 1e9)
    overhead_s = c.launch_overhead_us * 1e-6
    latency_s = max(compute_s, memory_s) + overhead_s
    padded_macs = cycles * c.cube_macs_per_cycle
    s = c.process_energy_scale
    l0_bytes = cycles * (c.cube_m * c.cube_k + c.cube_k * c.cube_n) * c.bytes_per_element
    ub_bytes = lane_ops * 3 * c.bytes_per_element  # two operand reads and one write per lane-op
    energy_pj = {
        "mac": padded_macs * c.e_mac_pj * s,
        "vector": lane_ops * c.e_vector_op_pj * s,
        "sram": (
            l0_bytes * c.e_l0_pj_per_byte
            + ub_bytes * c.e_ub_pj_per_byte
            + 2 * dram_bytes * c.e_l1_pj_per_byte
        )
        * s,
        "dram": dram_bytes * c.e_dram_pj_per_byte,
        "static": c.static_power_w * latency_s * 1e12,
    }
    bound = "compute" if compute_s >= memory_s else "memory"
    unit = "cube" if cycles and cube_s >= vector_s else "vector"
    return _result(
        group,
        f"{bound}:{unit}",
        latency_s,
        cube_s,
        vector_s,
        memory_s,
        overhead_s,
        energy_pj,
        macs,
        padded_macs,
        dram_bytes,
        lane_ops,
        cycles,
    )


def _result(
    group,
    bound,
    latency_s,
    cube_s,
    vector_s,
    memory_s,
    overhead_s,
    energy_pj,
    macs,
    padded,
    dram,
    lanes,
    cycles,
):
    return {
        "name": group.name,
        "ops": [op.name for op in group.ops],
        "bound": bound,
        "latency_ms": latency_s * 1e3,
        "compute_ms": max(cube_s, vector_s) * 1e3,
        "cube_ms": cube_s * 1e3,
        "vector_ms": vector_s * 1e3,
        "memory_ms": memory_s * 1e3,
        "overhead_ms": overhead_s * 1e3,
        "energy_mj": sum(energy_pj.values()) * 1e-9,
        "energy_breakdown_mj": {k: v * 1e-9 for k, v in energy_pj.items()},
        "macs": int(macs),
        "padded_macs": int(padded),
        "cube_cycles": int(cycles),
        "lane_ops": float(lanes),
        "dram_bytes": int(dram),
    }


def cost_groups(groups: list[Group], c: NpuConstants) -> dict[str, Any]:
    """Whole-model cost: groups run one after another (one kernel at a time on the AI cores)."""
    rows = [cost_group(g, c) for g in groups]
    breakdown: dict[str, float] = {}
    for row in rows:
        for key, value in row["energy_breakdown_mj"].items():
            breakdown[key] = breakdown.get(key, 0.0) + value
    latency_ms = sum(r["latency_ms"] for r in rows)
    energy_mj = sum(r["energy_mj"] for r in rows)
    return {
        "latency_ms": latency_ms,
        "energy_mj": energy_mj,
        "power_w": energy_mj / latency_ms if latency_ms > 0 else 0.0,
        "energy_breakdown_mj": breakdown,
        "kernels": sum(1 for r in rows if r["bound"] != "view"),
        "macs": sum(r["macs"] for r in rows),
        "padded_macs": sum(r["padded_macs"] for r in rows),
        "dram_bytes": sum(r["dram_bytes"] for r in rows),
        "groups": rows,
    }


def cost_model(
    model, constants: NpuConstants | dict | None = None, *, fusion: str = "onnx-rules"
) -> dict[str, Any]:
    """Cost an ONNX model (ModelProto, bytes, path or Graph) on the modeled NPU; no subprocess.

    fusion="onnx-rules" (default, fast: TVM's FuseOps rule applied to the ONNX graph, no TVM import)
    or "tvm" (import with TVM's ONNX frontend, legalise, FuseOps). BatchNorm after a Conv is folded
    first in both cases, as an NPU compiler does. Returns latency_ms, energy_mj, power_w, groups, ...
    """
    if constants is None:
        consts = NpuConstants.default()
    elif isinstance(constants, NpuConstants):
        consts = constants
    else:
        consts = NpuConstants.from_options(constants)
    if fusion == "onnx-rules":
        from autogo_deploy.backends.npu_fuse import onnx_groups

        groups = onnx_groups(model)
    elif fusion == "tvm":
        from autogo_deploy.backends.npu_sim import tvm_groups

        groups = tvm_groups(model)
    else:
        raise ValueError(f"fusion must be 'onnx-rules' or 'tvm', got {fusion!r}")
    result = cost_groups(groups, consts)
    result["fusion"] = fusion
    return result
