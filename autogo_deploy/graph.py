"""ONNX ⇄ Graph: load, validate, shape-infer, clean up, canonical order, features, extract, splice, save.

g = load("model.onnx", input_shapes={"input": (1, 3, 224, 224)})
g.totals()             # {'macs': ..., 'params': ..., 'activation_bytes': ..., 'nodes': ...}
sub = g.extract(["conv1", "relu1"])       # standalone valid ONNX model
new = g.splice(names, replacement, inputs, outputs)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from autogo_deploy import onnx_ingest as ingest
from autogo_deploy.errors import InputError, ModelError, first_line
from autogo_deploy.node_features import Node, describe
from autogo_deploy.onnx_run import check_equivalent
from autogo_deploy.topo import canonical_order

__all__ = ["Graph", "Node", "from_verified", "load"]


def load(
    source: str | os.PathLike | bytes | onnx.ModelProto,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    cleanup: bool = True,
    fold_bn: bool = False,
    verify: bool = False,
) -> Graph:
    """Load and validate a model into a Graph with static shapes and canonical order.

    cleanup: run onnxslim (constant folding, dead code, CSE); fold_bn: also fold BatchNorm into Conv;
    verify: check the cleaned model gives the original's outputs on random inputs (onnxruntime).
    """
    model, path = ingest.read_model(source)
    model, converted = ingest.ensure_opset(model)
    notes = [converted] if converted else []
    ingest.check_ops(model)
    notes += ingest.pin_input_shapes(model, input_shapes)
    _sort_nodes(model)  # files need not list nodes in topological order; cycles are refused here
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception as exc:
        raise ModelError(f"invalid ONNX graph: {first_line(exc)}") from None
    original = model
    if cleanup or fold_bn:
        model = ingest.cleanup(model, fold_bn=fold_bn)
        ingest.check_ops(model)
    model = ingest.infer_static_shapes(model)
    ingest.validate(model)
    if verify and (cleanup or fold_bn):
        diff = check_equivalent(ingest.infer_static_shapes(original), model)
        notes.append(f"cleanup verified on random inputs (max abs diff {diff:.2e})")
    return Graph(model, source_path=path, notes=notes)


def fresh_prefix(prefix: str, names) -> str:
    """`prefix` + the smallest k such that no name in `names` starts with `prefix{k}/`, + "/"."""
    k = 0
    while any(x.startswith(f"{prefix}{k}/") for x in names):
        k += 1
    return f"{prefix}{k}/"


def from_verified(data: bytes) -> Graph:
    """A Graph of a model this tool itself produced and checked: the input after `load` (cleaned,
    validated, shapes inferred) or a mutant `mutate.apply` verified (full ONNX check, onnxruntime
    run, shapes inferred). Parsed and indexed without validating again: ~10 ms instead of ~350 ms
    for a ResNet-50, which the search pays for every candidate it scores and every parent it
    mutates. A model with any tensor lacking a static shape goes through `load` after all; bytes
    from a user's file never come here (use `load`)."""
    model = onnx.load_from_string(data)
    g = model.graph
    shaped = {vi.name for vi in list(g.input) + list(g.value_info) + list(g.output) if ingest._static(vi)}
    shaped |= {t.name for t in g.initializer}
    if any(t and t not in shaped for n in g.node for t in n.output):
        return load(data, cleanup=False)
    return Graph(model)


class Graph:
    """A validated ONNX model with static shapes, nodes in canonical order and per-node features."""

    def __init__(self, model: onnx.ModelProto, *, source_path: Path | None = None, notes=None):
        self.source_path = source_path
        self.notes: list[str] = list(notes or [])
        self.model = _canonicalise(model)
        g = self.model.graph
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, int] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            tt = vi.type.tensor_type
            self._dtypes[vi.name] = tt.elem_type
            self._shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
        init_sizes = {}
        for t in g.initializer:
            self._shapes[t.name] = tuple(t.dims)
            self._dtypes[t.name] = t.data_type
            init_sizes[t.name] = int(np.prod(t.dims)) if len(t.dims) else 1
        self._init_sizes = init_sizes
        self.nodes: list[Node] = []
        for i, proto in enumerate(g.node):
            node = describe(proto, self._shapes, self._dtypes, init_sizes)
            node.index = i
            self.nodes.append(node)
        self._by_name = {n.name: n for n in self.nodes}
        self._producer = {t: n for n in self.nodes for t in n.outputs if t}
        self._consumers: dict[str, list[Node]] = {}
        for n in self.nodes:
            for t in n.inputs:
                if t:
                    self._consumers.setdefault(t, []).append(n)
        self._initializers: dict[str, np.ndarray] | None = None

    # ---- lookups -------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [vi.name for vi in ingest.graph_inputs(self.model)]

    @property
    def output_names(self) -> list[str]:
        return [vi.name for vi in self.model.graph.output]

    @property
    def initializers(self) -> dict[str, np.ndarray]:
        if self._initializers is None:
            self._initializers = ingest.initializer_arrays(self.model)
        return self._initializers

    def is_initializer(self, tensor: str) -> bool:
        return tensor in self._init_sizes

    def node(self, name: str) -> Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(f"no node named {name!r}") from None

    def producer(self, tensor: str) -> Node | None:
        return self._producer.get(tensor)

    def consumers(self, tensor: str) -> list[Node]:
        return list(self._consumers.get(tensor, []))

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self._shapes[tensor]

    def dtype(self, tensor: str) -> int:
        return self._dtypes.get(tensor, onnx.TensorProto.FLOAT)

    def totals(self) -> dict:
        return {
            "nodes": len(self.nodes),
            "macs": sum(n.macs for n in self.nodes),
            "params": sum(self._init_sizes.values()),
            "activation_bytes": sum(n.act_bytes for n in self.nodes),
        }

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.nodes:
            hist[n.op_type] = hist.get(n.op_type, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def io_shapes(self) -> dict:
        return {
            "inputs": {n: list(self.shape(n)) for n in self.input_names},
            "outputs": {n: list(self.shape(n)) for n in self.output_names},
        }

    # ---- subgraphs -----------------------------------------------------------------------------
    def boundary(self, node_names: Iterable[str]) -> tuple[list[str], list[str]]:
        """External (non-initializer) input tensors and the output tensors used outside the set."""
        names = set(node_names)
        members = [n for n in self.nodes if n.name in names]
        if len(members) != len(names):
            unknown = sorted(names - {n.name for n in members})
            raise InputError(f"unknown node(s): {', '.join(unknown[:5])}")
        produced = {t for n in members for t in n.outputs if t}
        graph_outputs = set(self.output_names)
        ins: list[str] = []
        for n in members:
            for t in n.inputs:
                if t and t not in produced and not self.is_initializer(t) and t not in ins:
                    ins.append(t)
        outs: list[str] = []
        for n in members:
            for t in n.outputs:
                if not t or t in outs:
                    continue
                outside = any(c.name not in names for c in self._consumers.get(t, []))
                if outside or t in graph_outputs:
                    outs.append(t)
        return ins, outs

    def extract(self, node_names: Iterable[str], name: str = "segment") -> onnx.ModelProto:
        """The node set as a standalone valid model; boundary tensors become graph inputs/outputs."""
        names = set(node_names)
        ins, outs = self.boundary(names)
        protos = [self.model.graph.node[n.index] for n in self.nodes if n.name in names]
        used = {t for p in protos for t in p.input}
        inits = [t for t in self.model.graph.initializer if t.name in used]
        graph = helper.make_graph(
            protos,
            name,
            [self._value_info(t) for t in ins],
            [self._value_info(t) for t in outs],
            initializer=inits,
            value_info=[
                self._value_info(t)
                for p in protos
                for t in p.output
                if t and t not in outs and t in self._shapes
            ],
        )
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version
        return model

    def splice(
        self,
        node_names: Iterable[str],
        replacement: onnx.ModelProto,
        inputs: list[str],
        outputs: list[str],
        *,
        prefix: str = "m",
    ) -> onnx.ModelProto:
        """Remove `node_names`, inline `replacement` wired to boundary tensors; returns a new model.

        The replacement's i-th graph input is bound to tensor inputs[i] and its j-th graph output
        produces tensor outputs[j]. Its internal tensor/node/initializer names get a unique prefix.
        Shapes are not re-inferred here: load the result with `load(model, cleanup=False)`.
        """
        names = set(node_names)
        rg = replacement.graph
        r_inits = {t.name for t in rg.initializer}
        r_inputs = [vi.name for vi in rg.input if vi.name not in r_inits]
        if len(r_inputs) != len(inputs) or len(rg.output) != len(outputs):
            raise InputError(
                f"replacement has {len(r_inputs)} inputs/{len(rg.output)} outputs, boundary needs "
                f"{len(inputs)}/{len(outputs)}"
            )
        existing = {t for n in self.nodes for t in list(n.inputs) + list(n.outputs)}
        existing |= {n.name for n in self.nodes} | set(self._init_sizes)
        tag = fresh_prefix(prefix, existing)
        rename = dict(zip(r_inputs, inputs, strict=True))
        out_map = {vi.name: outputs[j] for j, vi in enumerate(rg.output)}
        new_nodes = []
        for rn in rg.node:
            node = onnx.NodeProto()
            node.CopyFrom(rn)
            node.name = tag + (rn.name or rn.op_type)
            node.input[:] = [rename.get(t, out_map.get(t, tag + t)) if t else "" for t in rn.input]
            node.output[:] = [out_map.get(t, tag + t) if t else "" for t in rn.output]
            new_nodes.append(node)
        # a replacement output that is directly one of its inputs needs an Identity
        for vi in rg.output:
            if vi.name in rename:
                new_nodes.append(
                    helper.make_node("Identity", [rename[vi.name]], [out_map[vi.name]], name=tag + "id")
                )
        new_inits = []
        for t in rg.initializer:
            c = onnx.TensorProto()
            c.CopyFrom(t)
            c.name = tag + t.name
            new_inits.append(c)
        kept = [self.model.graph.node[n.index] for n in self.nodes if n.name not in names]
        still_used = {t for p in kept + new_nodes for t in p.input}
        inits = [t for t in self.model.graph.initializer if t.name in still_used] + new_inits
        g = self.model.graph
        removed_tensors = {t for n in self.nodes if n.name in names for t in n.outputs}
        value_info = [vi for vi in g.value_info if vi.name not in removed_tensors or vi.name in outputs]
        graph = helper.make_graph(
            kept + new_nodes,
            g.name,
            list(g.input),
            list(g.output),
            initializer=inits,
            value_info=[vi for vi in value_info if vi.name not in set(outputs)],
        )
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version
        _sort_nodes(model)
        return model

    def _value_info(self, tensor: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(tensor, self.dtype(tensor), list(self._shapes.get(tensor, ())))

    # ---- output --------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()

    def save(self, path: str | os.PathLike) -> Path:
        return save_model(self.model, path)

    def __repr__(self) -> str:
        t = self.totals()
        return f"Graph(nodes={t['nodes']}, macs={t['macs']:,}, params={t['params']:,})"


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves a broken file."""
    return save_bytes(model.SerializeToString(), path)


def save_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write a serialized model atomically, with the permissions a plain write would give (the
    temp file is 0600); a failed write is one InputError line."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise InputError(f"output path {path} is a directory")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _sort_nodes(model: onnx.ModelProto) -> None:
    order = canonical_order(model.graph)
    if order != list(range(len(order))):
        nodes = [model.graph.node[i] for i in order]
        del model.graph.node[:]
        model.graph.node.extend(nodes)


def _canonicalise(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder nodes canonically and give every node a unique, deterministic name."""
    order = canonical_order(model.graph)
    nodes = [model.graph.node[i] for i in order]
    seen: set[str] = set()
    counts: dict[str, int] = {}
    renamed = []
    for proto in nodes:
        name = proto.name
        if not name or name in seen:
            base = proto.op_type.lower()
            while True:
                counts[base] = counts.get(base, 0) + 1
                name = f"{base}_{counts[base]}"
                if name not in seen:
                    break
        seen.add(name)
        if name != proto.name:
            c = onnx.NodeProto()
            c.CopyFrom(proto)
            c.name = name
            proto = c
        renamed.append(proto)
    if [n.name for n in renamed] == [n.name for n in model.graph.node] and all(
        a is b for a, b in zip(renamed, model.graph.node, strict=True)
    ):
        return model
    del model.graph.node[:]
    model.graph.node.extend(renamed)
    return model
