"""Collate graph tensors + PSC splits into one disjoint-union batch of torch tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autogo_deploy.predictor.features import ALIVE_COL, GraphTensors, split_with_ports


@dataclass
class Batch:
    x: torch.Tensor  # [N, F]
    edge_index: torch.Tensor  # [2, E]
    graph: torch.Tensor  # [N] graph id within the batch
    part: torch.Tensor  # [N] graph * 3 + part (P=0, S=1, C=2)
    cost_w: torch.Tensor  # [N] how many times the node runs (repeat count), 0 for port nodes
    pool_w: torch.Tensor  # [N] weight in accuracy pooling: repeat count (1 for ports), 0 if not alive
    num_graphs: int


def collate(graphs: list[GraphTensors], parts: list[np.ndarray]) -> Batch:
    xs, es, gids, pids, reals = [], [], [], [], []
    offset = 0
    for i, (gt, p) in enumerate(zip(graphs, parts, strict=True)):
        x, e, node_part, repeat = split_with_ports(gt, p)
        # dead → alive edges carry nothing the network computes: alive nodes do not listen to them
        e = e[:, ~((x[e[0], ALIVE_COL] == 0) & (x[e[1], ALIVE_COL] > 0))]
        xs.append(x)
        es.append(e + offset)
        gids.append(np.full(x.shape[0], i, np.int64))
        pids.append(node_part + 3 * i)
        reals.append(repeat)
        offset += x.shape[0]
    rep = np.concatenate(reals).astype(np.float32)
    x_all = np.concatenate(xs)
    pool = np.where(rep > 0, rep, 1.0) * (x_all[:, ALIVE_COL] > 0)
    return Batch(
        x=torch.from_numpy(x_all),
        edge_index=torch.from_numpy(np.concatenate(es, axis=1)),
        graph=torch.from_numpy(np.concatenate(gids)),
        part=torch.from_numpy(np.concatenate(pids)),
        cost_w=torch.from_numpy(rep),
        pool_w=torch.from_numpy(pool.astype(np.float32)),
        num_graphs=len(graphs),
    )
