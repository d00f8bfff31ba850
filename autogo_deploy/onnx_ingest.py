"""Reading untrusted ONNX safely: parse, external data, opset, static shapes, validation, cleanup.

Every failure a user can cause becomes a ModelError (exit 2) with one line saying what and why.
The input file is only ever read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter
from onnx import TensorProto, helper, numpy_helper

from autogo_deploy.errors import DynamicShapeError, ModelError, UnsupportedOpError, first_line

MIN_OPSET = 13
TARGET_OPSET = 17  # what older models are converted to
# the newest default-domain opset and IR version the pinned onnxruntime (1.31) reads; the pinned onnx
# (1.23) writes opset 28 / IR 14 by default, so models saved with its defaults are converted down
ORT_MAX_OPSET = 26
MAX_FILE_BYTES = 4 * 1024**3

# Standard-domain operators the graph IR understands (features, MACs, splicing).
SUPPORTED_OPS = frozenset(
    """
    Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant
    ConstantOfShape Conv ConvTranspose DepthToSpace Div Dropout Einsum Elu Equal Erf Exp Expand Flatten
    Floor Gather GatherElements Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual
    GroupNormalization HardSigmoid HardSwish Identity InstanceNormalization LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax LRN MatMul Max MaxPool Mean Min Mish Mod Mul Neg Not Or Pad Pow PRelu
    Range Reciprocal ReduceL2 ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum Relu Reshape Resize
    Round Selu Shape Sigmoid Sign Sin Cos Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
    Squeeze Sub Sum Tanh Tile TopK Transpose Unsqueeze Upsample Where Xor
    """.split()
)


def read_model(source: str | os.PathLike | bytes | onnx.ModelProto) -> tuple[onnx.ModelProto, Path | None]:
    """Parse a model from a path, bytes or a ModelProto; external data is loaded safely."""
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model, None
    if isinstance(source, bytes | bytearray | memoryview):
        return _parse_bytes(bytes(source), "<bytes>"), None
    path = Path(source)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"expected an ONNX file, got a directory: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path} is empty, not an ONNX model")
    if size > MAX_FILE_BYTES:
        raise ModelError(f"{path} is {size / 1e9:.1f} GB; models over 4 GB are not supported")
    model = _parse_bytes(path.read_bytes(), str(path))
    _load_external_data(model, path.resolve().parent, str(path))
    return model, path


def _parse_bytes(data: bytes, label: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ModelError(f"{label} is not a valid ONNX protobuf (truncated or corrupt): {exc}") from None
    if model.ir_version <= 0 or not model.HasField("graph") or len(model.graph.node) == 0:
        raise ModelError(f"{label} is not an ONNX model (no IR version or empty graph)")
    return model


def _external_tensors(model: onnx.ModelProto):
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            yield tensor
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_location == TensorProto.EXTERNAL:
                yield attr.t


def _load_external_data(model: onnx.ModelProto, base: Path, label: str) -> None:
    """Load external tensors, refusing locations that leave the model's folder."""
    for tensor in _external_tensors(model):
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if not location:
            raise ModelError(f"{label}: tensor {tensor.name!r} has external data without a location")
        target = (base / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(base):
            raise ModelError(
                f"{label}: external data {location!r} of tensor {tensor.name!r} points outside the "
                "model's folder (refused: path traversal)"
            )
        if not target.is_file():
            raise ModelError(f"{label}: external data file {location!r} of tensor {tensor.name!r} is missing")
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", 0) or 0) or (target.stat().st_size - offset)
        if offset < 0 or offset + length > target.stat().st_size:
            raise ModelError(
                f"{label}: external data of {tensor.name!r} exceeds {location!r} (offset/length)"
            )
        with open(target, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ModelError("model imports no default-domain (ai.onnx) opset")


def ensure_opset(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Opset >= 13 passes; older models are converted where the converter can; newer than known fails."""
    opset = default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelError(f"opset {opset} is newer than this onnx package supports (<= {newest})")
    if opset > ORT_MAX_OPSET:
        return _convert(model, opset, ORT_MAX_OPSET, "newer than onnxruntime reads")
    if opset >= MIN_OPSET:
        return model, None
    if model.ir_version < 4:  # IR < 4 demanded initializers be graph inputs; newer IR lifts that
        model.ir_version = 4
    return _convert(model, opset, TARGET_OPSET, f"older than {MIN_OPSET}")


def _convert(model: onnx.ModelProto, opset: int, to: int, why: str) -> tuple[onnx.ModelProto, str]:
    """The model converted to opset `to` with the IR version that opset needs (up or down)."""
    try:
        converted = onnx.version_converter.convert_version(model, to)
        needed = helper.find_min_ir_version_for(list(converted.opset_import))
        converted.ir_version = needed if to < opset else max(converted.ir_version, needed)
    except Exception as exc:
        raise ModelError(
            f"opset {opset} is {why} and the ONNX version converter failed: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return converted, f"converted from opset {opset} to {to} ({why})"


def check_ops(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            where = f" (domain {node.domain!r})" if node.domain not in ("", "ai.onnx") else ""
            raise UnsupportedOpError(
                f"unsupported operator {node.op_type}{where} in node {node.name or '<unnamed>'}; "
                f"supported: {', '.join(sorted(SUPPORTED_OPS))}"
            )


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def parse_shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """`NAME=1x3x224x224` → ("NAME", (1, 3, 224, 224))."""
    from autogo_deploy.errors import InputError

    name, sep, dims = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.lower().split("x"))
        if any(d <= 0 for d in shape):
            raise ValueError
    except ValueError:
        raise InputError(
            f"bad --input-shape {text!r}; expected NAME=1x3x224x224 with positive dims"
        ) from None
    return name, shape


def pin_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None) -> list[str]:
    """Make every graph input static; a dynamic leading (batch) dim defaults to 1. Returns notes."""
    input_shapes = dict(input_shapes or {})
    notes: list[str] = []
    inputs = graph_inputs(model)
    names = {vi.name for vi in inputs}
    for name in input_shapes:
        if name not in names:
            raise ModelError(
                f"--input-shape names {name!r}, not an input; inputs: {', '.join(sorted(names))}"
            )
    for vi in inputs:
        ttype = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"input {vi.name!r} is not a tensor (sequences/maps are unsupported)")
        if vi.name in input_shapes:
            shape = input_shapes[vi.name]
            if ttype.HasField("shape") and len(ttype.shape.dim) not in (0, len(shape)):
                raise ModelError(
                    f"--input-shape {vi.name} has rank {len(shape)} but the model's input has rank "
                    f"{len(ttype.shape.dim)}"
                )
            for i, d in enumerate(shape):
                if ttype.HasField("shape") and len(ttype.shape.dim) == len(shape):
                    dim = ttype.shape.dim[i]
                    if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != d:
                        raise ModelError(
                            f"--input-shape {vi.name}: dim {i} is fixed to {dim.dim_value} in the model, not {d}"
                        )
            ttype.ClearField("shape")
            for d in shape:
                ttype.shape.dim.add().dim_value = int(d)
            continue
        if not ttype.HasField("shape"):
            raise DynamicShapeError(
                f"input {vi.name!r} has no shape; pin it with --input-shape {vi.name}=1x3x224x224"
            )
        for i, dim in enumerate(ttype.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            if dim.HasField("dim_value"):  # static, but 0 (or negative): an empty tensor
                raise ModelError(
                    f"input {vi.name!r} has dimension {i} = {dim.dim_value}: an empty input cannot be "
                    f"measured; pin a size with --input-shape {vi.name}=…"
                )
            label = dim.dim_param or "?"
            if i == 0:
                dim.Clear()
                dim.dim_value = 1
                notes.append(f"input {vi.name}: dynamic batch dimension {label!r} set to 1")
                continue
            raise DynamicShapeError(
                f"input {vi.name!r} has dynamic dimension {i} ({label!r}); pin it with "
                f"--input-shape {vi.name}=" + "x".join(str(d.dim_value or "N") for d in ttype.shape.dim)
            )
    return notes


def _static(vi: onnx.ValueInfoProto) -> bool:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return False
    return all(d.HasField("dim_value") and d.dim_value > 0 for d in vi.type.tensor_type.shape.dim) or (
        len(vi.type.tensor_type.shape.dim) == 0
    )


def infer_static_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Strict ONNX shape inference; tensors it leaves symbolic get shapes from one ORT run."""
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ModelError(f"shape inference failed: {first_line(exc)}") from None
    known = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.output)}
    known.update({vi.name: vi for vi in model.graph.input})
    inits = {t.name for t in model.graph.initializer}
    missing = []
    for node in model.graph.node:
        for out in node.output:
            if out and out not in inits and (out not in known or not _static(known[out])):
                missing.append(out)
    if missing:
        model = _shapes_from_ort(model, missing)
    return model


def _shapes_from_ort(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    import onnxruntime as ort

    from autogo_deploy.onnx_run import random_inputs  # onnx_run builds on this module

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # its failure is reported as our one error line, not its log
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds = random_inputs(model, seed=0)
        results = sess.run(names, feeds)
    except Exception as exc:
        raise ModelError(f"cannot determine static shapes (onnxruntime: {first_line(exc)})") from None
    by_name = {vi.name: vi for vi in model.graph.value_info}
    outputs = {o.name: o for o in model.graph.output}
    for name, arr in zip(names, results, strict=True):
        elem = helper.np_dtype_to_tensor_dtype(np.asarray(arr).dtype)
        vi = helper.make_tensor_value_info(name, elem, list(np.shape(arr)))
        if name in outputs:
            outputs[name].CopyFrom(vi)
        elif name in by_name:
            by_name[name].CopyFrom(vi)
        else:
            model.graph.value_info.append(vi)
    return model


MAX_TENSOR_BYTES = 4 * 2**30  # one activation bigger than this is refused before anything runs


def validate(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelError(f"invalid ONNX graph: {first_line(exc)}") from None
    g = model.graph
    for vi in [*g.input, *g.value_info, *g.output]:  # static shapes by now (infer_static_shapes)
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
        except (KeyError, TypeError, ValueError):  # undefined or exotic element type: not sized here
            continue
        dims = [d.dim_value for d in tt.shape.dim]
        size = math.prod(dims) * itemsize
        if size > MAX_TENSOR_BYTES:
            raise ModelError(
                f"tensor {vi.name!r} of shape {'x'.join(map(str, dims))} needs {size / 2**30:.1f} GiB; "
                f"tensors over {MAX_TENSOR_BYTES // 2**30} GiB are not supported (pin a smaller shape "
                "with --input-shape)"
            )


COLLECT_AFTER_SLIM_BYTES = 16 * 2**20  # models at least this big are collected after onnxslim


def _weight_bytes(model: onnx.ModelProto) -> int:
    """About how big the model's weights are (4 bytes an element), from the dims alone:
    ModelProto.ByteSize() walks the whole message (~75 ms for ResNet-50, once per npu-sim measurement)."""
    return 4 * sum(math.prod(t.dims) for t in model.graph.initializer)


def cleanup(model: onnx.ModelProto, fold_bn: bool) -> onnx.ModelProto:
    """onnxslim: constant folding, dead-node and common-subexpression elimination, safe fusions."""
    import gc
    import logging

    import onnxslim

    skip = [] if fold_bn else ["FusionConvBN", "FusionConvTransposeBN"]
    logging.getLogger("onnxslim").setLevel(logging.ERROR)
    try:
        slimmed = onnxslim.slim(model, skip_fusion_patterns=skip)
    except Exception as exc:
        raise ModelError(f"cleanup (onnxslim) failed: {first_line(exc)}") from None
    finally:
        # onnxslim's graph (onnx-graphsurgeon) is full of reference cycles (node <-> tensor lists)
        # and holds every weight as a numpy array: without a collection here it lives until the
        # cyclic GC happens to run, ~1.1 GB per VGG-16 load (a VGG-16 search grew to 22 GB). A full
        # collection costs ~0.1 s with torch loaded, so small models leave it to the GC.
        if _weight_bytes(model) >= COLLECT_AFTER_SLIM_BYTES:
            gc.collect()
    if slimmed is None:
        raise ModelError("cleanup (onnxslim) returned no model")
    return slimmed


def initializer_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
