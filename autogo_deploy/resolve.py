"""Choose channels and strides of a replacement segment S' placed at a boundary: an MILP on HiGHS.

S' is analysed by `resolve_ops.analyse`: every activation tensor gets a channel *class* (tensors that
must have equal channels share one integer variable) and a finite set of reachable spatial sizes,
computed forward from the boundary's fixed input sizes through each op's option menu (strides
{1, 2, own} for Conv/MaxPool/AveragePool, scales {own, 1, 2} for Resize). The MILP then has

* one integer channel variable per class, in [1, C_max];
* one binary per (tensor, reachable spatial size), exactly one chosen per tensor, and one binary per
  (op, option), exactly one chosen per op. An op's spatial rule is applied by table: for input size v
  and option o the output size is f(v, o), the exact ONNX formula (pads, dilations, ceil_mode,
  auto_pad), and x[in, v] + b[op, o] - x[out, f(v, o)] <= 1. This linearises
  ``out = floor((in + pads - dil*(k-1) - 1) / s) + 1`` exactly, with the stride chosen from a menu;
* per op: Conv C_out free (channel-wise: C_out = multiplier * C_in and group = C_in; grouped: C_in and
  C_out multiples of group); Add/Mul/... operands equal (size-1 broadcast dims stay 1); Concat
  C_out = sum of C_in with equal sizes; Gemm/MatMul F_out free; Flatten F = C * H * W (binary x
  integer products linearised exactly); DepthToSpace/SpaceToDepth scale C by block^2; element-wise
  and normalisation ops pass through; GlobalAveragePool/ReduceMean make sizes 1;
* boundary: S' inputs take the predecessor's tensors (shapes fixed), S' outputs equal the shapes the
  successor expects; alignment: a free channel class is a multiple of `align` (hard constraint),
  except in a component the boundary ties to a non-multiple (then soft, penalised).

Objective (minimise; each term dimensionless; AutoGO's intent made explicit):
  W_COST   = 1.0   |MACs_lin(S') - MACs(S)| / MACs(S)   stay close to the original segment's cost
                   (each op's MACs x its `cost_weights` entry when given); MACs_lin: per op,
                   sum_v hw(v) x[t, v] * tangent plane of the channel product at the reference
                   channels, the binary x continuous products linearised exactly (McCormick)
  W_REDUCE = 0.5   sum over free classes of max(0, ref_c - C_c) / ref_c: penalise channel reductions
  W_LATE   = 0.05  sum over chosen strides > 1 of (1 - pos/n): prefer late downsampling
  W_KEEP   = 0.1   number of options that differ from S' own: keep S' as it was unless needed
  W_ALIGN  = 0.2   residual_c / align, only where alignment cannot be hard
Reference channels are S' source channels times rho, the geometric mean of boundary-input channels
over S' source input channels (a segment cut from a 64-wide net placed in a 256-wide spot scales x4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

from autogo_deploy.resolve_ops import (
    Op,
    Segment,
    UnionFind,
    Unsupported,
    analyse,
    broadcasts,
    exact_macs,
    reachable,
    spatial_of,
    spatial_out,
)
from autogo_deploy.solver import Certificate, Problem

W_COST, W_REDUCE, W_LATE, W_KEEP, W_ALIGN = 1.0, 0.5, 0.05, 0.1, 0.2
MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass
class Plan:
    """The MILP's decisions, in S' tensor/node names."""

    shapes: dict[str, tuple[int, ...]]  # every activation tensor's full shape
    options: dict[str, tuple]  # op name -> stride (window ops) or spatial scales (Resize)
    groups: dict[str, int]  # Conv name -> group
    macs: int  # MACs of S' at these shapes (exact)
    macs_linearised: float  # what the MILP's linear cost model predicted


@dataclass
class Resolution:
    ok: bool
    reason: str
    certificate: Certificate | None
    plan: Plan | None = None
    code: str = ""  # rejection category: Unsupported codes, or infeasible / timeout / solver


def resolve(
    segment: onnx.ModelProto | Segment,
    in_shapes: list[tuple[int, ...]],
    out_shapes: list[tuple[int, ...]],
    *,
    reference_macs: float,
    align: int = 1,
    cost_weights: dict[str, float] | None = None,
    time_limit_s: float = 1.0,
    seed: int = 0,
) -> Resolution:
    """Channels/strides for S' between fixed boundary shapes; a rejected Resolution, never a raise."""
    try:
        seg = segment if isinstance(segment, Segment) else analyse(segment)
        builder = _Builder(seg, in_shapes, out_shapes, max(int(align), 1), cost_weights or {})
        builder.build(float(reference_macs))
    except Unsupported as exc:
        return Resolution(False, str(exc), None, code=exc.code)
    cert = builder.problem.solve(time_limit_s, seed=seed)
    if cert.status == "infeasible" and align > 1:  # name the cause: is it the alignment?
        plain = resolve(seg, in_shapes, out_shapes, reference_macs=reference_macs, align=1,
                        cost_weights=cost_weights, time_limit_s=time_limit_s, seed=seed)  # fmt: skip
        if plain.ok:
            why = f"MILP infeasible with channels aligned to {align} (feasible without alignment)"
            return Resolution(False, why, cert, code="alignment")
    if cert.status != "optimal":
        why = {
            "infeasible": "MILP infeasible: no channels/strides satisfy the boundary and alignment",
            "time_limit": f"MILP hit the {time_limit_s:g} s time limit",
        }.get(cert.status, f"MILP status {cert.status}")
        code = {"infeasible": "infeasible", "time_limit": "timeout"}.get(cert.status, "solver")
        return Resolution(False, why, cert, code=code)
    plan = builder.plan(cert)
    for t, want in zip(seg.outputs, out_shapes, strict=True):
        if plan.shapes[t] != tuple(want):  # the formulation guarantees this; keep the guard honest
            return Resolution(
                False,
                f"internal: output {t} resolved to {plan.shapes[t]}, need {want}",
                cert,
                code="internal",
            )
    return Resolution(True, "", cert, plan)


class _Builder:
    def __init__(self, seg: Segment, in_shapes, out_shapes, align: int, weights: dict[str, float]):
        self.seg, self.align, self.weights = seg, align, weights
        in_shapes = [tuple(int(d) for d in s) for s in in_shapes]
        out_shapes = [tuple(int(d) for d in s) for s in out_shapes]
        if len(in_shapes) != len(seg.inputs) or len(out_shapes) != len(seg.outputs):
            raise Unsupported(
                f"replacement has {len(seg.inputs)} inputs/{len(seg.outputs)} outputs, boundary has "
                f"{len(in_shapes)}/{len(out_shapes)}",
                "arity",
            )
        for t, s in [*zip(seg.inputs, in_shapes, strict=True), *zip(seg.outputs, out_shapes, strict=True)]:
            if len(s) != seg.rank(t):
                raise Unsupported(
                    f"rank mismatch at {t}: replacement {seg.rank(t)}-D, boundary {len(s)}-D", "rank"
                )
        if len({s[0] for s in in_shapes + out_shapes}) != 1:
            raise Unsupported("boundary tensors disagree on the batch size", "batch")
        self.batch = in_shapes[0][0]
        self.fixed_in = dict(zip(seg.inputs, in_shapes, strict=True))
        self.fixed_out = dict(zip(seg.outputs, out_shapes, strict=True))
        self.problem = Problem()
        self.R, self.ref_sp = reachable(seg, self.fixed_in, self.fixed_out)
        self._channels()

    # ---- channel classes -----------------------------------------------------------------------
    def _channels(self) -> None:
        seg, uf = self.seg, UnionFind()
        rel: list[tuple] = []  # ("sum", out, ins) | ("scale", a, b, f): C_a = f C_b | ("div", t, g)
        decision: list[str] = []  # tensors whose channels the MILP chooses freely
        fixed_one: list[str] = []
        self.groups: dict[str, str | int] = {}
        for t in seg.inputs:
            uf.find(t)
        for op in seg.ops:
            a0, out, k = op.acts[0], op.out, op.kind
            src_c = seg.src[a0][1]
            if k == "window" and op.op_type == "Conv":
                g = int(op.attrs.get("group", 1))
                mult = op.wshape[0] // g
                if g == 1:
                    decision.append(out)
                elif g == src_c and seg.rank(a0) > 2:  # depthwise / channel-wise
                    self.groups[op.name] = a0
                    uf.union(out, a0) if mult == 1 else rel.append(("scale", out, a0, mult))
                else:
                    self.groups[op.name] = g
                    rel += [("div", a0, g), ("div", out, g)]
                    decision.append(out)
            elif k == "window" and op.op_type == "ConvTranspose":
                if int(op.attrs.get("group", 1)) != 1:
                    raise Unsupported("grouped ConvTranspose")
                decision.append(out)
            elif k == "gemm":
                decision.append(out)
            elif k == "nary":
                for a in op.acts:
                    if seg.src[a][1] == 1 and seg.src[out][1] != 1:
                        fixed_one.append(a)
                    else:
                        uf.union(out, a)
            elif k == "concat":
                rel.append(("sum", out, list(op.acts)))
            elif k == "flatten":
                uf.union(out, a0) if seg.rank(a0) == 2 else rel.append(("flat", out, a0))
            elif k in ("d2s", "s2d"):
                f = int(op.attrs["blocksize"]) ** (len(seg.src[a0]) - 2)
                rel.append(("scale", a0, out, f) if k == "d2s" else ("scale", out, a0, f))
            else:
                uf.union(out, a0)
            uf.find(out)
        fixed: dict[str, int] = {}
        for t, c in [(t, s[1]) for t, s in {**self.fixed_in, **self.fixed_out}.items()] + [
            (t, 1) for t in fixed_one
        ]:
            r = uf.find(t)
            if fixed.setdefault(r, c) != c:
                raise Unsupported(
                    f"channel conflict: {t} must have {c} channels and {fixed[r]} at once", "channels"
                )
        self.uf, self.rel, self.fixed = uf, rel, fixed
        self.decision = {uf.find(t) for t in decision} - set(fixed)
        self._references()

    def _references(self) -> None:
        seg, uf = self.seg, self.uf
        ratios = [self.fixed_in[t][1] / seg.src[t][1] for t in seg.inputs]
        rho = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        ref: dict[str, float] = {r: float(c) for r, c in self.fixed.items()}
        for op in seg.ops:
            r = uf.find(op.out)
            if r in ref:
                continue
            rs = [ref.get(uf.find(a), seg.src[a][1]) for a in op.acts]
            rel = next((x for x in self.rel if x[1] == op.out), None)
            if r in self.decision:
                ref[r] = max(float(self.align), round(seg.src[op.out][1] * rho / self.align) * self.align)
            elif rel and rel[0] == "sum":
                ref[r] = float(sum(rs))
            elif rel and rel[0] == "flat":
                ref[r] = rs[0] * math.prod(self.ref_sp[op.acts[0]])
            elif rel and rel[0] == "scale":
                ref[r] = rs[0] * rel[3]
            elif op.kind == "d2s":
                ref[r] = max(1.0, rs[0] / (seg.src[op.acts[0]][1] / seg.src[op.out][1]))
            else:
                ref[r] = rs[0]
        self.ref = ref
        biggest = max([*ref.values(), *(s[1] for s in self.fixed_in.values())])
        self.cmax = int(min(max(4 * biggest, 64), 1 << 16))

    # ---- the MILP ------------------------------------------------------------------------------
    def build(self, reference_macs: float) -> None:
        P, seg, uf = self.problem, self.seg, self.uf
        roots = sorted({uf.find(t) for t in self.R})
        flat_ub = {
            uf.find(r[1]): self.cmax * max(math.prod(v) for v in self.R[r[2]])
            for r in self.rel
            if r[0] == "flat"
        }
        self.C = {}
        for r in roots:
            if r in self.fixed:
                self.C[r] = P.var(f"C[{r}]", self.fixed[r], self.fixed[r])
            else:
                self.C[r] = P.var(f"C[{r}]", 1, flat_ub.get(r, self.cmax))
        self.x = {(t, v): P.binary(f"x[{t}]{v}") for t in self.R for v in self.R[t]}
        for t, sizes in self.R.items():
            P.eq({self.x[t, v]: 1 for v in sizes}, 1)
        for t, shape in self.fixed_out.items():
            P.fix(self.x[t, spatial_of(shape)], 1)
        self.b = {}
        for op in seg.ops:
            if len(op.menu) > 1:
                for j in range(len(op.menu)):
                    self.b[op.name, j] = P.binary(f"b[{op.name}]{j}")
                P.eq({self.b[op.name, j]: 1 for j in range(len(op.menu))}, 1)
            self._spatial_rows(op)
        self._relation_rows()
        self._alignment_rows()
        self._objective(reference_macs)

    def c(self, t: str) -> int:
        return self.C[self.uf.find(t)]

    def _spatial_rows(self, op: Op) -> None:
        P, x, R = self.problem, self.x, self.R
        if op.kind in ("nary", "concat"):
            for a in op.acts:
                if op.kind == "nary" and broadcasts(self.seg.src, op, a):
                    ones = (1,) * len(spatial_of(self.seg.src[a]))
                    if ones not in R[a]:
                        raise Unsupported(f"{op.name}: broadcast operand {a} cannot stay size 1", "spatial")
                    P.fix(x[a, ones], 1)
                    continue
                for v in R[a]:
                    P.eq({x[a, v]: 1, x[op.out, v]: -1} if v in R[op.out] else {x[a, v]: 1}, 0)
            return
        a = op.acts[0]
        for v in R[a]:
            for j, o in enumerate(op.menu):
                w = spatial_out(self.seg, op, o, v)
                terms = {x[a, v]: 1}
                chosen = (op.name, j) in self.b
                if chosen:
                    terms[self.b[op.name, j]] = 1
                if w is not None and w in R[op.out]:
                    terms[x[op.out, w]] = -1
                P.le(terms, 1 if chosen else 0)  # [x_in = v and option j] implies x_out = f(v, j)

    def _relation_rows(self) -> None:
        P, c = self.problem, self.c
        for rel in self.rel:
            kind = rel[0]
            if kind == "sum":
                terms = {c(rel[1]): 1.0}
                for a in rel[2]:
                    terms[c(a)] = terms.get(c(a), 0.0) - 1.0
                P.eq(terms, 0)
            elif kind == "scale":
                if c(rel[1]) == c(rel[2]):
                    raise Unsupported(
                        f"channel ratio {rel[3]} between {rel[1]} and {rel[2]} in one class", "channels"
                    )
                P.eq({c(rel[1]): 1, c(rel[2]): -rel[3]}, 0)
            elif kind == "div":
                q = P.var(f"q[{rel[1]}]{len(P.names)}", 1, self.cmax)
                P.eq({c(rel[1]): 1, q: -rel[2]}, 0)
            elif kind == "flat":
                out, a = rel[1], rel[2]
                if len(self.R[a]) == 1:
                    P.eq({c(out): 1, c(a): -math.prod(self.R[a][0])}, 0)
                    continue
                terms = {c(out): 1.0}
                for v in self.R[a]:  # z = x[a, v] * C[a], exactly, for binary x
                    z = P.continuous(f"z[{a}]{v}", 0, self.cmax)
                    xv, M = self.x[a, v], self.cmax
                    P.le({z: 1, xv: -M}, 0)
                    P.le({z: 1, c(a): -1}, 0)
                    P.ge({z: 1, c(a): -1, xv: -M}, -M)
                    terms[z] = -float(math.prod(v))
                P.eq(terms, 0)

    def _alignment_rows(self) -> None:
        k = self.align
        self.soft: list[int] = []
        if k <= 1:
            return
        comp = UnionFind()
        for rel in self.rel:
            members = [rel[1], *(rel[2] if rel[0] == "sum" else [rel[2]] if rel[0] != "div" else [])]
            for m in members[1:]:
                comp.union(self.uf.find(members[0]), self.uf.find(m))
        bad = {comp.find(r) for r, v in self.fixed.items() if v % k}
        P = self.problem
        for r in sorted(self.decision):
            soft = comp.find(r) in bad
            m = P.var(f"m[{r}]", 0 if soft else 1, max(1, self.cmax // k))
            if soft:
                res = P.var(f"res[{r}]", 0, k - 1)
                P.eq({self.C[r]: 1, m: -k, res: -1}, 0)
                self.soft.append(res)
            else:
                P.eq({self.C[r]: 1, m: -k}, 0)

    def _mac_terms(self, op: Op) -> tuple[float, list[str], str | None] | None:
        """MACs = coef * H*W(spatial tensor) * prod(channels of tensors); None for MAC-free ops."""
        if op.op_type not in MAC_OPS:
            return None
        a, out = op.acts[0], op.out
        if op.kind == "gemm":
            return float(self.batch), [a, out], None
        sp_t = a if op.op_type == "ConvTranspose" else out
        kernel = math.prod(op.wshape[2:])
        g = self.groups.get(op.name, 1)
        if isinstance(g, str):  # channel-wise conv: C_in / group = 1
            return float(self.batch * kernel), [out], sp_t
        return self.batch * kernel / g, [a, out], sp_t

    def _cost_rows(self) -> tuple[dict[int, float], float, float]:
        """Linear cost model: (terms, constant, cost at the reference point), in MACs.

        Per op: coef * sum_v hw(v) x[t, v] * L, with L the tangent plane of the channel product at
        the reference channels (exact when at most one channel count varies), normalised to ~1;
        the binary x continuous products y_v = x[t, v] * L are linearised exactly (McCormick)."""
        P = self.problem
        terms: dict[int, float] = {}
        const = ref_cost = 0.0
        for op in self.seg.ops:
            mac = self._mac_terms(op)
            if mac is None:
                continue
            coef, chans, sp_t = mac
            coef *= float(self.weights.get(op.op_type, 1.0))
            roots = [self.uf.find(t) for t in chans]
            refs = [max(self.ref[r], 1.0) for r in roots]
            norm = math.prod(refs)
            # L / norm = sum_i C_i / ref_i - (k - 1): tangent plane of prod(C_i) / prod(ref_i)
            l_terms: dict[int, float] = {}
            for r, ref in zip(roots, refs, strict=True):
                l_terms[self.C[r]] = l_terms.get(self.C[r], 0.0) + 1.0 / ref
            l_const = -(len(roots) - 1.0)
            lo = l_const + sum(P.lower[i] * c for i, c in l_terms.items())
            hi = l_const + sum(P.upper[i] * c for i, c in l_terms.items())
            sizes = self.R[sp_t] if sp_t else [()]
            ref_cost += coef * norm * math.prod(self.ref_sp[sp_t] if sp_t else ())
            if len(sizes) == 1:
                w = coef * norm * math.prod(sizes[0])
                for i, c in l_terms.items():
                    terms[i] = terms.get(i, 0.0) + w * c
                const += w * l_const
                continue
            for v in sizes:
                y, xv = P.continuous(f"y[{op.name}]{v}", min(lo, 0.0), max(hi, 0.0)), self.x[sp_t, v]
                neg = {i: -c for i, c in l_terms.items()}
                P.le({y: 1, xv: -hi}, 0)
                P.ge({y: 1, xv: -lo}, 0)
                P.le({y: 1, **neg, xv: -lo}, l_const - lo)
                P.ge({y: 1, **neg, xv: -hi}, l_const - hi)
                terms[y] = coef * norm * math.prod(v)
        return terms, const, ref_cost

    def _objective(self, reference_macs: float) -> None:
        P, seg = self.problem, self.seg
        terms, const, ref_cost = self._cost_rows()
        self.cost_terms, self.cost_const = terms, const
        scale = reference_macs if reference_macs >= 1.0 else max(ref_cost, 1.0)  # relative to S
        # the deviation row is divided by `scale`: coefficients O(1), within HiGHS' tolerances
        dp, dm = P.continuous("dev+"), P.continuous("dev-")
        P.eq({**{i: cf / scale for i, cf in terms.items()}, dp: -1, dm: 1}, (reference_macs - const) / scale)
        P.minimize({dp: W_COST, dm: W_COST})
        for r in sorted(self.decision):
            slack = P.continuous(f"red[{r}]")
            P.ge({slack: 1, self.C[r]: 1}, self.ref[r])
            P.minimize({slack: W_REDUCE / max(self.ref[r], 1.0)})
        n = len(seg.ops)
        for pos, op in enumerate(seg.ops):
            for j, o in enumerate(op.menu):
                if (op.name, j) not in self.b:
                    continue
                w = W_KEEP if j != op.orig else 0.0
                if op.kind == "window" and math.prod(o) > 1:
                    w += W_LATE * (1 - pos / n)
                if w:
                    P.minimize({self.b[op.name, j]: w})
        for res in self.soft:
            P.minimize({res: W_ALIGN / self.align})

    def plan(self, cert: Certificate) -> Plan:
        seg, vals = self.seg, cert.values
        names = self.problem.names
        val = [vals[n] for n in names]
        shapes = {}
        for t, sizes in self.R.items():
            v = max(sizes, key=lambda s: val[self.x[t, s]])
            shapes[t] = (self.batch, int(round(val[self.c(t)])), *v)
        options, groups = {}, {}
        macs = 0
        for op in seg.ops:
            if len(op.menu) > 1:
                options[op.name] = op.menu[max(range(len(op.menu)), key=lambda j: val[self.b[op.name, j]])]
            else:
                options[op.name] = op.menu[0]
            g = self.groups.get(op.name, 1)
            if isinstance(g, str):
                g = shapes[g][1]
            if op.op_type in ("Conv", "ConvTranspose"):
                groups[op.name] = g
            macs += exact_macs(op, shapes, g)
        lin = self.cost_const + sum(cf * val[i] for i, cf in self.cost_terms.items())
        return Plan(shapes, options, groups, macs, lin)
