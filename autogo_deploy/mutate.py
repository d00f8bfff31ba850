"""One AutoGO mutation: replace segment S of a graph by S', resolve shapes by MILP, verify.

    m = apply(graph, ["conv_3", "bn_4", "relu_5"], replacement, seed=0, align=16)
    if isinstance(m, Mutant):
        m.model, m.certificate, m.changes, m.inherited_param_share

Steps: boundary of S (tensors from the predecessor P, tensors the successor C reads) -> analyse S'
-> MILP (`resolve.resolve`) for S' channels/strides -> materialise S' (attributes, weights: nodes
whose parameter shapes match an unused node of S of the same type inherit its weights, all others
are Kaiming-normal from `seed`) -> `Graph.splice` -> merge twin nodes and the BatchNormalization
chains and the ReLUs of non-negative tensors the splice left (`simplify.merge_duplicate_nodes`,
`drop_redundant_relus`, `merge_batchnorm_chains`, exact) -> shape inference -> fold the data-free
regions of the zero tensors the splice touched (NB201's 'none' edges feeding convolutions, evaluated
once to constants: `zero_branches.fold_zero_branches`, exact for finite inputs) -> verify (onnx full check, onnxruntime
run on random input, same input/output names, shapes and dtypes). Anything that fails is a `Rejection`
with its stage and reason; only caller bugs (unknown node names) raise.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx.shape_inference import C as shape_inference_c  # onnx is pinned (pyproject): its C++ pass

from autogo_deploy.errors import InputError, ResolveRejected, first_line
from autogo_deploy.materialise import materialise
from autogo_deploy.resolve import Resolution, resolve
from autogo_deploy.resolve_ops import Segment, Unsupported, analyse
from autogo_deploy.simplify import drop_redundant_relus, merge_batchnorm_chains, merge_duplicate_nodes
from autogo_deploy.solver import Certificate
from autogo_deploy.zero_branches import fold_zero_branches

MAX_BINDINGS = 6  # boundary-to-S' port bindings tried (in order first, then permutations)


@dataclass
class Rejection:
    reason: str
    stage: str  # boundary | analyse | resolve | cost | materialise | splice | verify
    certificate: Certificate | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    code: str = ""  # category: arity, rank, spatial, channels, infeasible, timeout, unsupported, ...

    def __post_init__(self):
        self.code = self.code or self.stage

    def to_dict(self) -> dict:
        cert = self.certificate.to_dict() if self.certificate else None
        return {
            "reason": self.reason,
            "stage": self.stage,
            "code": self.code,
            "certificate": cert,
            "timings_ms": self.timings_ms,
        }


@dataclass
class Mutant:
    model: onnx.ModelProto
    certificate: Certificate
    inherited_param_share: float
    changes: dict
    timings_ms: dict[str, float]
    io: dict  # the original's {"inputs"/"outputs": [(name, elem_type, shape)]}, checked by verify()
    # the model serialized (as shape inference returned it); checked by verify()
    data: bytes | None = field(default=None, repr=False)

    def verify(self, *, seed: int = 0) -> None:
        """Raise ResolveRejected unless the model is valid ONNX, runs in onnxruntime on random
        input and keeps the original's input/output names, shapes and dtypes. The bytes it checks
        are `data` when given (the serialized `model`, as shape inference returned it), else
        `model` serialized; they stay in `data`, so a big model is not serialized a second time."""
        data = self.data if self.data is not None else self.model.SerializeToString()
        reason = verify_model(self.model, self.io, seed=seed, data=data)
        if reason:
            raise ResolveRejected(reason)
        self.data = data

    def graph(self):
        from autogo_deploy.graph import load

        return load(self.model, cleanup=False)


def apply(
    graph,
    occurrence_nodes,
    replacement_model: onnx.ModelProto,
    *,
    seed: int,
    align: int = 1,
    cost_weights: dict[str, float] | None = None,
    time_limit_s: float = 1.0,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    cost_target: float = 1.0,
    max_macs_growth: float | None = None,
) -> Mutant | Rejection:
    """Replace the nodes `occurrence_nodes` of `graph` (an autogo_deploy.graph.Graph) by S'.

    cost_target: the MILP aims S' at this multiple of S's (weighted) MACs; 1.0 is AutoGO's
    cost-neutral mutation, < 1 asks for a cheaper segment (used when the objective is a cost).
    max_macs_growth: reject a resolved S' with more than this multiple of S's MACs (None: no limit).
    The MILP cannot always reach its target: a dense replacement for a depthwise convolution keeps
    its channel counts and costs ~100x the MACs; when the objective is a cost such a mutant only
    wastes a prediction and a measurement slot, so it is dropped before it is materialised.

    inputs/outputs: the boundary tensors in S' port order (e.g. a segment Occurrence's `inputs`
    and `outputs`); default `graph.boundary` order. That binding is tried first, then other
    rank-compatible permutations (at most MAX_BINDINGS in all); the first resolvable one wins."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    names = list(dict.fromkeys(occurrence_nodes))
    ins, outs = graph.boundary(names)  # InputError on unknown node names: a caller bug
    if inputs is not None or outputs is not None:
        inputs, outputs = list(inputs or ins), list(outputs or outs)
        if sorted(inputs) != sorted(ins) or sorted(outputs) != sorted(outs):
            raise InputError(f"inputs/outputs must list the occurrence's boundary tensors {ins} -> {outs}")
        ins, outs = inputs, outputs
    members = [n for n in graph.nodes if n.name in set(names)]
    if not ins or not outs:
        return Rejection("occurrence has no activation input or no used output", "boundary")
    if any(graph.dtype(t) != onnx.TensorProto.FLOAT for t in ins + outs):
        return Rejection("boundary tensors are not float32", "boundary")
    try:
        seg = analyse(replacement_model)
    except Unsupported as exc:
        return Rejection(str(exc), "analyse", timings_ms=_lap(timings, "analyse", clock), code=exc.code)
    except Exception as exc:  # a malformed replacement must not crash the caller
        why = f"cannot analyse the replacement: {type(exc).__name__}: {first_line(exc)}"
        return Rejection(why, "analyse", timings_ms=_lap(timings, "analyse", clock), code="unsupported")
    weights = cost_weights or {}
    if not 0.0 < cost_target <= 4.0:
        raise InputError(f"cost_target must be in (0, 4], got {cost_target}")
    reference_macs = cost_target * sum(n.macs * float(weights.get(n.op_type, 1.0)) for n in members)
    first = best = None
    solve_ms, tried = 0.0, 0
    for b_ins, b_outs in _bindings(seg, graph, ins, outs):
        try:
            res = resolve(
                seg,
                [graph.shape(t) for t in b_ins],
                [graph.shape(t) for t in b_outs],
                reference_macs=reference_macs,
                align=align,
                cost_weights=weights,
                time_limit_s=time_limit_s,
                seed=seed,
            )
        except Exception as exc:  # a resolver bug: reported as such, never raised to the caller
            res = Resolution(
                False, f"internal: {type(exc).__name__}: {first_line(exc)}", None, code="internal"
            )
        tried += 1
        first = first or res
        solve_ms += res.certificate.solve_time_ms if res.certificate else 0.0
        if res.ok:
            best = (res, b_ins, b_outs)
            break
    _lap(timings, "resolve", clock)
    timings["milp_solve"] = round(solve_ms, 3)
    if best is None:  # the given binding's reason is the informative one
        why = first.reason + (f" (and {tried - 1} other port bindings failed)" if tried > 1 else "")
        return Rejection(why, "resolve", first.certificate, timings, code=first.code)
    res, b_ins, b_outs = best
    before = sum(n.macs for n in members)
    if max_macs_growth is not None and res.plan.macs > max_macs_growth * before:
        why = f"the resolved segment costs {res.plan.macs:,} MACs, over {max_macs_growth:g}x the {before:,} it replaces"
        return Rejection(why, "cost", res.certificate, timings, code="macs_growth")
    try:
        new_seg, fresh, inherited = materialise(seg, res.plan, graph, members, seed)
    except Exception as exc:
        why = f"materialise failed: {type(exc).__name__}: {first_line(exc)}"
        return Rejection(why, "materialise", res.certificate, timings)
    _lap(timings, "materialise", clock)
    try:
        model = graph.splice(names, new_seg, b_ins, b_outs)
        spliced_params = sum(math.prod(t.dims) for t in model.graph.initializer)
        old_nodes = {n.name for n in graph.nodes}

        def new_nodes() -> set[str]:  # each rewrite may remove nodes: asked again each time
            return {n.name for n in model.graph.node} - old_nodes

        twins = merge_duplicate_nodes(model, new_nodes())
        relus = drop_redundant_relus(model, new_nodes())
        merged = merge_batchnorm_chains(model, new_nodes())
        # onnx.shape_inference.infer_shapes without its last step: the C++ pass returns the inferred
        # model's bytes, which are kept for verify() (serializing a ResNet-50 again costs ~85 ms)
        data = shape_inference_c.infer_shapes(model.SerializeToString(), False, True, False)
        model = onnx.load_from_string(data)
        zeros = fold_zero_branches(model, new_nodes())
        if zeros:  # the folded graph's shapes, inferred again (only mutants with a zero branch)
            # a bypassed `y + 0` can leave ReLU(y) with y >= 0 (a block's ReLU after its Add)
            rewired = set().union(*(z["rewired"] for z in zeros))
            relus += drop_redundant_relus(model, new_nodes() | rewired)
            data = shape_inference_c.infer_shapes(model.SerializeToString(), False, True, False)
            model = onnx.load_from_string(data)
    except Exception as exc:  # splice/inference failure on a resolved plan is a rejection, recorded
        return Rejection(f"splice failed: {first_line(exc)}", "splice", res.certificate, timings)
    _lap(timings, "splice", clock)
    changes = _changes(seg, res.plan, members, b_ins, b_outs, graph, inherited, reference_macs, align)
    if merged:
        changes["merged_batchnorms"] = merged
    if twins:
        changes["merged_duplicates"] = twins
    if relus:
        changes["dropped_relus"] = relus
    if zeros:
        changes["folded_zero_branches"] = zeros
    mutant = Mutant(
        model=model,
        certificate=res.certificate,
        # counted before chains were merged (a merged node's parameters combine an inherited and a
        # fresh one) and zero branches folded
        inherited_param_share=(spliced_params - fresh) / spliced_params if spliced_params else 1.0,
        changes=changes,
        timings_ms=timings,
        io=io_signature(graph.model),
        data=data,
    )
    try:
        mutant.verify(seed=seed)
    except ResolveRejected as exc:
        return Rejection(f"verify failed: {exc}", "verify", res.certificate, _lap(timings, "verify", clock))
    _lap(timings, "verify", clock)
    return mutant


def _bindings(seg: Segment, graph, ins: list[str], outs: list[str]):
    """The given binding, then other permutations whose ranks match S' ports."""
    yield ins, outs
    if len(ins) != len(seg.inputs) or len(outs) != len(seg.outputs):
        return  # resolve() reports the arity mismatch
    n = 1

    def fits(tensors, ports):
        return all(len(graph.shape(t)) == seg.rank(p) for t, p in zip(tensors, ports, strict=True))

    for p_in in itertools.permutations(ins):
        if not fits(p_in, seg.inputs):
            continue
        for p_out in itertools.permutations(outs):
            if n >= MAX_BINDINGS:
                return
            if (list(p_in), list(p_out)) != (ins, outs) and fits(p_out, seg.outputs):
                n += 1
                yield list(p_in), list(p_out)


def _lap(timings: dict, stage: str, clock: float) -> dict:
    timings[stage] = round((time.perf_counter() - clock) * 1e3 - sum(timings.get(k, 0) for k in _STAGES), 3)
    return timings


_STAGES = ("analyse", "resolve", "materialise", "splice", "verify")


# ---- verification ------------------------------------------------------------------------------
def io_signature(model: onnx.ModelProto) -> dict:
    inits = {t.name for t in model.graph.initializer}

    def sig(vis):
        out = []
        for vi in vis:
            tt = vi.type.tensor_type
            out.append((vi.name, tt.elem_type, tuple(d.dim_value for d in tt.shape.dim)))
        return out

    return {
        "inputs": sig(vi for vi in model.graph.input if vi.name not in inits),
        "outputs": sig(model.graph.output),
    }


def verify_model(model: onnx.ModelProto, io: dict, *, seed: int = 0, data: bytes | None = None) -> str | None:
    """None when valid, else the first problem found (one line). `data`: the model already
    serialized, when the caller has it."""
    if data is None:
        data = model.SerializeToString()  # once: the checker and onnxruntime both take bytes
    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as exc:
        return f"onnx checker: {first_line(exc)}"
    got = io_signature(model)
    if got != io:
        return f"input/output signature changed: {got} != {io}"
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run as written
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, elem, shape in io["inputs"]:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
        feeds[name] = rng.standard_normal(shape).astype(dtype)
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        results = sess.run(None, feeds)
    except Exception as exc:
        return f"onnxruntime: {first_line(exc)}"
    for (name, elem, shape), value in zip(io["outputs"], results, strict=True):
        if tuple(value.shape) != shape or value.dtype != onnx.helper.tensor_dtype_to_np_dtype(elem):
            return f"output {name}: got {value.dtype}{tuple(value.shape)}, expected {shape}"
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"output {name} is not finite on random input"
    return None


def _changes(seg, plan, members, ins, outs, graph, inherited, reference_macs, align) -> dict:
    nodes = {}
    for op in seg.ops:
        entry = {"op": op.op_type, "out_shape": list(plan.shapes[op.out])}
        if op.kind == "window" or op.kind == "resize":
            entry["option"] = list(plan.options[op.name])
            entry["source_option"] = list(op.menu[op.orig])
        if op.name in plan.groups and plan.groups[op.name] != 1:
            entry["group"] = plan.groups[op.name]
        nodes[op.name] = entry
    return {
        "removed": [n.name for n in members],
        "inputs": {t: list(graph.shape(t)) for t in ins},
        "outputs": {t: list(graph.shape(t)) for t in outs},
        "nodes": nodes,
        "macs_before": int(sum(n.macs for n in members)),
        "macs_after": int(plan.macs),
        "macs_target": float(reference_macs),
        "macs_linearised": float(plan.macs_linearised),
        "inherited_nodes": [list(p) for p in inherited],
        "align": int(align),
    }
