"""npu-sim backend: an NPU-like target costed by an analytical model, with TVM doing the fusion.

The model goes through TVM the way a compiler for the NPU would see it: BatchNorm folded into the
Conv before it (`graph.load(fold_bn=True)`), Relax ONNX import, DecomposeOpsForInference,
LegalizeOps (every op becomes a TIR PrimFunc), AnnotateTIROpPattern, FoldConstant and FuseOps (the
same passes `tvm.compile`'s default pipeline runs before FuseTIR; no code is generated). Each
fused function (or lone call_tir) is one kernel; `npu_model.cost_group` costs it.

Per op, the vector work is read from the legalised PrimFunc: the iteration-space size of each of its
TIR blocks (one lane-operation per block instance), so pooling windows, softmax passes and layout
copies are counted as TVM lowers them. Conv/matmul shapes come from the call's argument shapes.
"""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Any

from autogo_deploy.backends.npu_model import Group, Op, Tensor

HARNESS = "npu_harness.py"
FUSION_MODES = ("tvm", "onnx-rules")
_VIEW_OPS = {"reshape", "expand_dims", "squeeze", "flatten"}
_PAD_BLOCKS = {"pad_temp", "PadInput", "data_pad"}


def availability(target) -> tuple[bool, str]:
    fusion = str(target.options.get("fusion", "tvm"))
    if fusion not in FUSION_MODES:
        return False, f"[backend] fusion must be one of {list(FUSION_MODES)}, got {fusion!r}"
    try:
        from autogo_deploy.backends.npu_model import NpuConstants

        NpuConstants.from_options(target.options)
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"invalid npu-sim constants: {exc}"
    if fusion == "tvm" and importlib.util.find_spec("tvm") is None:
        return (
            False,
            "apache-tvm not installed (needed for fusion = 'tvm'; pip install 'autogo-deploy[tvm]', or set fusion = 'onnx-rules')",
        )
    how = "TVM FuseOps" if fusion == "tvm" else "TVM's fusion rule on the ONNX graph"
    return True, f"analytical DaVinci-style NPU model (no hardware; fusion by {how})"


def fast_stand_in(target):
    """(target to measure on in loops, whether it is a stand-in) for many-model work (search,
    predictor calibration).

    With fusion = "tvm" every model spends 10-70 s in TVM's importer; the same fusion rule applied to
    the ONNX graph ("onnx-rules") gave identical groups and figures on every model of
    benchmarks/npu_sim_agreement.py in ~0.1 s. Loops use it; `optimize` re-costs the input and the
    result with TVM afterwards and reports the comparison."""
    import dataclasses

    if target.backend == "npu-sim" and str(target.options.get("fusion", "tvm")) == "tvm":
        return dataclasses.replace(target, options={**target.options, "fusion": "onnx-rules"}), True
    return target, False


def canonical_op_name(prim_name: str) -> str:
    """TVM PrimFunc name -> op name: 'conv2d1' -> 'conv2d', 'tir_sigmoid' -> 'sigmoid', 'add12' -> 'add'.

    LegalizeOps names PrimFuncs after their op and numbers repeats; no op name we cost ends in a digit.
    """
    name = re.sub(r"\d+$", "", prim_name)
    return name[4:] if name.startswith("tir_") else name


def _shape(expr) -> tuple[int, ...]:
    return tuple(int(d) for d in expr.ty.shape.values)


def _lane_ops(prim_func, skip_pad: bool) -> int:
    import tvm

    sch = tvm.s_tir.Schedule(prim_func)
    total = 0
    for block_rv in sch.get_child_blocks(sch.get_sblock("root")):
        block = sch.get(block_rv)
        if skip_pad and block.name_hint in _PAD_BLOCKS:
            continue
        total += math.prod(int(iv.dom.extent) for iv in block.iter_vars)
    return total


def _op_from_call(mod, call, out_var, tensors: dict) -> Op:
    """One call_tir -> Op (tensors: relax var/const -> Tensor, shared so groups see identity)."""
    import tvm

    gvar, args = call.args[0], list(call.args[1].fields)
    prim = mod[gvar]
    name = canonical_op_name(gvar.name_hint)
    pattern = int(prim.attrs.get("op_pattern", 8)) if prim.attrs is not None else 8
    inputs = []
    for arg in args:
        key = arg
        if key not in tensors:
            tensors[key] = Tensor(_shape(arg), const=isinstance(arg, tvm.ir.expr.Constant))
        inputs.append(tensors[key])
    out = Tensor(_shape(out_var))
    if name.startswith("conv") and pattern == 4:
        kind = "conv_transpose" if "transpose" in name else "conv"
        groups = 1
        if kind == "conv_transpose":
            groups = max(1, inputs[0].shape[1] // max(1, inputs[1].shape[0]))
        return Op(name, kind, inputs[:2], out, groups=groups)
    if name in ("matmul", "dense", "batch_matmul") and pattern == 4:
        return Op("matmul", "matmul", inputs[:2], out)
    if name in _VIEW_OPS:
        return Op(name, "view", inputs[:1], out)
    return Op(name, "vector", inputs, out, lane_ops=_lane_ops(prim, skip_pad=False))


def tvm_groups(model) -> list[Group]:
    """Fused groups of an ONNX model (path, bytes, ModelProto or Graph) as TVM's FuseOps forms them."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from autogo_deploy.backends.tvm import import_onnx
    from autogo_deploy.graph import load

    graph = load(model.model if hasattr(model, "model") else model, fold_bn=True)
    mod = import_onnx(graph.model, from_onnx)
    seq = tvm.transform.Sequential(
        [
            relax.transform.DecomposeOpsForInference(),
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
        ]
    )
    with tvm.target.Target({"kind": "llvm"}):
        mod = seq(mod)
    return groups_from_module(mod)


def groups_from_module(mod) -> list[Group]:
    """Walk `main` of a fused (not yet FuseTIR'd) Relax module and build one Group per kernel."""
    from tvm import relax

    call_tir = tvm_op("relax.call_tir")
    tensors: dict[Any, Tensor] = {}
    groups: list[Group] = []
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not isinstance(value, relax.Call):
                continue
            if value.op == call_tir:
                op = _op_from_call(mod, value, binding.var, tensors)
                op.external = tuple(True for _ in op.inputs)
                tensors[binding.var] = op.output
                groups.append(Group(op.name, [op], list(op.inputs), [op.output]))
            elif isinstance(value.op, relax.GlobalVar) and isinstance(mod[value.op], relax.Function):
                group = _fused_group(mod, value, tensors)
                tensors[binding.var] = group.outputs[0]
                groups.append(group)
    return groups


def _fused_group(mod, call, tensors: dict) -> Group:
    import tvm
    from tvm import relax

    func = mod[call.op]
    local: dict[Any, Tensor] = {}
    ext_inputs: list[Tensor] = []
    for param, arg in zip(func.params, call.args, strict=True):
        key = arg
        if key not in tensors:
            tensors[key] = Tensor(_shape(arg), const=isinstance(arg, tvm.ir.expr.Constant))
        local[param] = tensors[key]
        ext_inputs.append(tensors[key])
    call_tir = tvm_op("relax.call_tir")
    ops: list[Op] = []
    produced: set[int] = set()
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if value in local:  # an alias (gv = lv) of a tensor computed in the group
                local[binding.var] = local[value]
            if not (isinstance(value, relax.Call) and value.op == call_tir):
                continue
            op = _op_from_call(mod, value, binding.var, local)
            op.external = tuple(id(t) not in produced for t in op.inputs)
            produced.add(id(op.output))
            local[binding.var] = op.output
            ops.append(op)
    result = func.body.body
    fields = result.fields if isinstance(result, relax.Tuple) else [result]
    outputs = [local[v] for v in fields if v in local]
    return Group(call.op.name_hint, ops, ext_inputs, outputs)


def tvm_op(name: str):
    import tvm

    return tvm.ir.Op.get(name)
