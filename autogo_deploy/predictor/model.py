"""The PSC graph neural network (torch-geometric): one shared directed encoder, three heads.

Encoder: node features → MLP → `layers` rounds of directed message passing. Each round has two
SAGE convolutions with their own weights: one aggregates from predecessors (data flow), one from
successors (reverse flow), so the encoder knows which way tensors travel. P, S and C are disjoint
subgraphs of the batch (see features.split_with_ports), so one pass encodes all three with shared
weights; each part is pooled (mean and max over alive nodes) and the three poolings are concatenated
in P, S, C order. There are two such encoders (towers): one feeds the accuracy head, one the cost
heads — with one encoder for both, the accuracy and latency losses traded against each other.

Heads:
- accuracy (target independent): MLP over [P | S | C] → standardised scores for CIFAR-10,
  CIFAR-100 and ImageNet16-120 (train.py keeps the affine map back to percent).
- latency / energy (target dependent): every real node gets K non-negative costs
  c_v = exp(MLP(h_v)); a graph's basis is G = [1, MACs, activation bytes, node count, counts of
  convolutions by kernel (1, 3, 5+, depthwise) and of op kinds, Σ_v c_v] (each a sum over nodes
  weighted by their repeat count, so additive over P, S and C; the fixed sums give the learned ones a
  physically meaningful start and let a few measurements express per-op costs). A target is an
  embedding z ≥ 0 over G; latency_ms = G · z and energy_mj = G · e. Training targets own a learned z; a new target's z is fitted from its measured
  reference latencies (fewshot.py), a linear problem because the basis does not depend on z.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import SAGEConv
from torch_geometric.utils import scatter

from autogo_deploy.predictor.batching import Batch
from autogo_deploy.predictor.features import NUM_FEATURES, NUM_OPS, OP_VOCAB

ACC_OUTPUTS = 3
_MACS_COL, _BYTES_COL, _KERNEL_COL, _DW_COL = NUM_OPS + 12, NUM_OPS + 14, NUM_OPS + 0, NUM_OPS + 5
# node-count bases by kind: the per-op cost structure a target can have (launch overheads, per-op
# kernels) that MACs and bytes alone do not express; counts are repeat-weighted and scaled by 1/10
_KINDS = (
    ("Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Gelu", "Erf"),
    ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool"),
    ("Add", "Sum", "Sub"),
    ("Mul", "Div", "Pow", "Sqrt"),
    ("Concat", "Split", "Slice", "Reshape", "Transpose", "Flatten", "Pad", "Resize", "DepthToSpace",
     "SpaceToDepth", "Identity"),
    ("Gemm", "MatMul"),
)  # fmt: skip
FIXED_BASES = 4 + 4 + len(_KINDS)  # constant, MACs, bytes, nodes; conv k1/k3/k5+/depthwise; kinds


class PSCEncoder(nn.Module):
    """Node rows → MLP → `layers` rounds of directed message passing (residual + LayerNorm)."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.fwd = nn.ModuleList(SAGEConv(hidden, hidden, aggr="mean") for _ in range(layers))
        self.bwd = nn.ModuleList(
            SAGEConv(hidden, hidden, aggr="mean", root_weight=False) for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        rev = edge_index.flip(0)
        for fwd, bwd, norm in zip(self.fwd, self.bwd, self.norms, strict=True):
            h = h + F.relu(norm(fwd(h, edge_index) + bwd(h, rev)))
        return h


class PSCModel(nn.Module):
    def __init__(
        self, *, hidden: int = 64, layers: int = 4, basis: int = 8, devices: list[str] | None = None
    ):
        super().__init__()
        self.hidden, self.layers, self.basis = hidden, layers, basis
        self.devices: list[str] = list(devices or [])
        # two towers, each shared by P, S and C: accuracy and cost learn different things from the same
        # graph, and one shared encoder traded one for the other in our runs (see docs/predictor.md)
        self.acc_encoder = PSCEncoder(hidden, layers)
        self.cost_encoder = PSCEncoder(hidden, layers)
        self.acc_head = nn.Sequential(
            nn.Linear(6 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, ACC_OUTPUTS),
        )  # fmt: skip
        self.cost_head = nn.Sequential(
            nn.Linear(hidden + NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, basis)
        )
        with torch.no_grad():
            self.cost_head[-1].bias.fill_(-3.0)
        # raw (pre-softplus) latency / energy embeddings of the targets seen in training
        self.lat_raw = nn.Parameter(torch.full((max(len(self.devices), 1), basis + FIXED_BASES), -2.0))
        self.energy_raw = nn.Parameter(torch.full((max(len(self.devices), 1), basis + FIXED_BASES), -2.0))

    def config(self) -> dict:
        return {"hidden": self.hidden, "layers": self.layers, "basis": self.basis, "devices": self.devices}

    def forward(self, b: Batch, *, need_acc: bool = True) -> dict[str, torch.Tensor]:
        out = {}
        if need_acc:
            h = self.acc_encoder(b.x, b.edge_index)
            n_parts = 3 * b.num_graphs
            w = b.pool_w[:, None]
            total = scatter(w, b.part, dim=0, dim_size=n_parts, reduce="sum").clamp_min(1e-6)
            mean = scatter(h * w, b.part, dim=0, dim_size=n_parts, reduce="sum") / total
            masked = h.masked_fill(w == 0, -1e4)
            mx = scatter(masked, b.part, dim=0, dim_size=n_parts, reduce="max").clamp_min(-1.0)
            out["acc"] = self.acc_head(torch.cat([mean, mx], dim=1).reshape(b.num_graphs, 6 * self.hidden))
        hc = self.cost_encoder(b.x, b.edge_index)
        log_cost = self.cost_head(torch.cat([hc, b.x], dim=1)).clamp(-20.0, 10.0)
        macs = torch.exp2(b.x[:, _MACS_COL] * 32.0) - 1.0
        act_bytes = torch.exp2(b.x[:, _BYTES_COL] * 32.0) - 1.0
        fixed = torch.cat([torch.stack([macs / 1e8, act_bytes / 1e7, torch.full_like(macs, 0.01)], dim=1),
                           0.1 * self._kind_counts(b.x)], dim=1)  # fmt: skip
        cost = torch.cat([fixed, torch.exp(log_cost)], dim=1) * b.cost_w[:, None]
        basis = scatter(cost, b.graph, dim=0, dim_size=b.num_graphs, reduce="sum")
        out["basis"] = torch.cat([torch.ones(b.num_graphs, 1, dtype=basis.dtype), basis], dim=1)
        return out

    def _kind_counts(self, x: torch.Tensor) -> torch.Tensor:
        conv = x[:, OP_VOCAB.index("Conv")] + x[:, OP_VOCAB.index("ConvTranspose")]
        dw = conv * x[:, _DW_COL]
        k = torch.round(x[:, _KERNEL_COL] * 7.0)
        dense = conv - dw
        cols = [dense * (k <= 1), dense * (k == 3) + dense * (k == 2), dense * (k >= 4), dw]
        for kind in _KINDS:
            cols.append(x[:, [OP_VOCAB.index(op) for op in kind]].sum(dim=1))
        return torch.stack(cols, dim=1)

    def lat_embeddings(self) -> torch.Tensor:
        return F.softplus(self.lat_raw)

    def energy_embeddings(self) -> torch.Tensor:
        return F.softplus(self.energy_raw)
