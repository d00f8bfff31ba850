"""Every exact rewrite a splice applies, over a whole graph, until nothing changes.

`mutate.apply` merges twin nodes and BatchNormalization chains, drops ReLUs of non-negative tensors
and folds zero branches where a splice touched the graph (`simplify`, `zero_branches`).
`canonicalise` applies the same rewrites to every node: on a search result it should find nothing
left to do. The accuracy head scores what these rewrites remove as capacity (a redundant ReLU, a
convolution of a constant: docs/optimize.md), so a result they still change had its predicted
accuracy flattered; `benchmarks/optimize_gains.py` records the check with every result.
"""

from __future__ import annotations

import onnx

from autogo_deploy.simplify import drop_redundant_relus, merge_batchnorm_chains, merge_duplicate_nodes
from autogo_deploy.zero_branches import fold_zero_branches

MAX_ROUNDS = 8


def canonicalise(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """(a rewritten copy of `model`, how many of each rewrite applied); the copy is shape-inferred."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    counts = {"merged_duplicates": 0, "dropped_relus": 0, "merged_batchnorms": 0, "folded_zero_branches": 0}
    for _ in range(MAX_ROUNDS):
        done = [
            ("merged_duplicates", merge_duplicate_nodes(m, _names(m))),
            ("dropped_relus", drop_redundant_relus(m, _names(m))),
            ("merged_batchnorms", merge_batchnorm_chains(m, _names(m))),
        ]
        m = onnx.shape_inference.infer_shapes(m)
        done.append(("folded_zero_branches", fold_zero_branches(m, _names(m))))
        for key, items in done:
            counts[key] += len(items)
        if not any(items for _, items in done):
            break
    return m, counts


def _names(model: onnx.ModelProto) -> set[str]:
    return {n.name for n in model.graph.node}
