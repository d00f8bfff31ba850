"""The Predictor API: order and ids preserved, PSC triples, psc_delta, embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from predictor_fixtures import needs_data

from autogo_deploy.errors import InputError
from autogo_deploy.graph import load
from autogo_deploy.predictor.arch_graphs import nb201_tensors
from autogo_deploy.predictor.inference import Predictor
from autogo_deploy.zoo import nb201

ARCHS = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|",
]


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint):
    return Predictor(tiny_checkpoint)


@needs_data
def test_order_and_ids_survive_internal_size_sorting(predictor):
    graphs = [nb201_tensors(a) for a in ARCHS]
    sizes = [g.num_nodes for g in graphs]
    assert sizes != sorted(sizes)  # the batch really gets reordered inside
    emb = predictor.embedding(predictor.trained_targets[1])
    ids = ["cand-a", "cand-b", "cand-c", "cand-d"]
    batch = predictor.predict(graphs, emb, ids=ids)
    single = [predictor.predict([g], emb, ids=[i])[0] for g, i in zip(graphs, ids, strict=True)]
    assert [p.id for p in batch] == ids
    for b, s in zip(batch, single, strict=True):
        assert b.id == s.id and np.isclose(b.acc, s.acc) and np.isclose(b.latency_ms, s.latency_ms)
        assert b.source == "predicted"
    # shuffled input → the same prediction follows each candidate
    perm = [2, 0, 3, 1]
    shuffled = predictor.predict([graphs[i] for i in perm], emb, ids=[ids[i] for i in perm])
    by_id = {p.id: p for p in batch}
    for p in shuffled:
        assert np.isclose(p.latency_ms, by_id[p.id].latency_ms) and np.isclose(p.acc, by_id[p.id].acc)


@needs_data
def test_onnx_input_matches_direct_tensors(predictor):
    emb = predictor.embedding(predictor.trained_targets[0])
    a = predictor.predict([nb201(ARCHS[2])], emb)[0]
    b = predictor.predict([nb201_tensors(ARCHS[2])], emb)[0]
    assert np.isclose(a.latency_ms, b.latency_ms, rtol=1e-5) and np.isclose(a.acc, b.acc, rtol=1e-5)
    assert a.energy_mj is not None  # the first target was trained with energy labels
    assert predictor.predict([nb201(ARCHS[2])])[0].latency_ms is None  # no target → accuracy only


@needs_data
def test_psc_triple_and_delta(predictor):
    g = load(nb201(ARCHS[2]), cleanup=False)
    seg = [n.name for n in g.nodes if n.name.startswith("cells.7.")]
    emb = predictor.embedding(predictor.trained_targets[0])
    (p,) = predictor.predict([(g, seg)], emb, ids=["x"])
    assert p.id == "x" and p.latency_ms > 0
    replacement = g.extract(seg)
    same = predictor.psc_delta(g, seg, replacement, emb)
    assert abs(same.latency_ms) < 1e-6 * max(1.0, same.before.latency_ms)  # S' == S: no change
    assert abs(same.acc) < 1e-6
    with pytest.raises(InputError, match="not in the graph"):
        predictor.predict([(g, ["no_such_node"])], emb)


@needs_data
def test_unknown_target_says_how_to_calibrate(predictor):
    with pytest.raises(InputError) as info:
        predictor.embedding("some-phone")
    assert "predictor calibrate --target some-phone" in info.value.one_line()
