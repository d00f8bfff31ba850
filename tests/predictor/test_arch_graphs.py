"""The fast NB201/FBNet tensors equal the featurised zoo networks after graph.load cleanup."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from autogo_deploy.graph import load
from autogo_deploy.predictor.arch_graphs import fbnet_tensors, nb201_tensors
from autogo_deploy.predictor.features import from_graph
from autogo_deploy.zoo import fbnet, nb201


def _wl(gt, rounds: int = 4) -> list[str]:
    lab = [
        hashlib.md5(r.tobytes() + str(k).encode()).hexdigest() for r, k in zip(gt.x, gt.repeat, strict=True)
    ]
    pred = [[] for _ in lab]
    succ = [[] for _ in lab]
    for u, v in gt.edges.T.tolist():
        pred[v].append(u)
        succ[u].append(v)
    for _ in range(rounds):
        lab = [
            hashlib.md5(
                (
                    lab[i]
                    + "|"
                    + ",".join(sorted(lab[j] for j in pred[i]))
                    + "|"
                    + ",".join(sorted(lab[j] for j in succ[i]))
                ).encode()
            ).hexdigest()
            for i in range(len(lab))
        ]
    return sorted(lab)


@pytest.mark.parametrize(
    "arch",
    [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|",
    ],
)
def test_nb201_matches_zoo(arch):
    direct = nb201_tensors(arch)
    loaded = from_graph(load(nb201(arch)))
    assert direct.x.shape == loaded.x.shape and direct.edges.shape == loaded.edges.shape
    assert _wl(direct) == _wl(loaded)


@pytest.mark.parametrize(
    "arch", ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"]
)
def test_uncleaned_model_reads_like_cleaned(arch):
    """graph_specs' CSE makes `load(cleanup=False)` (fast path of the optimizer) match the cleaned graph."""
    raw = from_graph(load(nb201(arch), cleanup=False))
    assert _wl(raw) == _wl(nb201_tensors(arch))
    covered = sorted(v for m in raw.members for v in m)
    assert covered == list(range(len(load(nb201(arch), cleanup=False).nodes)))


def test_fbnet_matches_zoo():
    ops = "k3_e1 k3_e1_g2 k5_e6 skip k3_e3 k5_e1_g2 k5_e3 skip k3_e6 k5_e1 k3_e1 skip k5_e6 k3_e3 k3_e1_g2 k5_e1 k5_e3 skip k3_e6 k5_e6 k3_e1 k5_e1_g2".split()
    direct = fbnet_tensors(ops)
    loaded = from_graph(load(fbnet(ops)))
    assert _wl(direct) == _wl(loaded)


def test_nb201_repeats_cover_all_cells():
    gt = nb201_tensors(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    conv_rows = gt.x[:, 0] == 1.0  # "Conv" is the first op of the vocabulary
    # 6 convs per cell x 15 cells, + stem + 2x3 reduction convs = 97 convolutions in the network
    assert float(gt.repeat[conv_rows].sum()) == 97
    assert np.isclose(gt.depth.max(), 1.0)
