"""Tokens and BPE: deterministic merges, pieces tile the sequence, unseen tokens stay single."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autogo_deploy.graph import load
from autogo_deploy.segments.bpe import Merges, code_point
from autogo_deploy.segments.segment import Vocabulary
from autogo_deploy.segments.structure import StructGraph
from autogo_deploy.segments.tokenize import graph_tokens, token_op


def _corpus(n: int = 300, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    chars = [code_point(i) for i in range(6)]
    return [
        "".join(chars[0] + chars[1] + chars[int(rng.integers(2, 6))] for _ in range(20)) for _ in range(n)
    ]


def test_merges_are_deterministic_and_order_free():
    seqs = _corpus()
    alphabet = sorted(set("".join(seqs)))
    a = Merges.train(seqs, alphabet=alphabet, vocab_size=40)
    b = Merges.train(list(reversed(seqs)), alphabet=alphabet, vocab_size=40)
    assert a.json == b.json
    assert len(a.vocab()) <= 40
    assert any(len(p) > 1 for p in a.pieces())


def test_pieces_tile_and_unknown_chars_stay_single():
    seqs = _corpus()
    merges = Merges.train(seqs, alphabet=sorted(set("".join(seqs))), vocab_size=30)
    text = seqs[0][:9] + code_point(500) + seqs[0][9:18]
    spans = merges.encode(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a < b and (i == 0 or spans[i - 1][1] == a) for i, (a, b) in enumerate(spans))
    assert (9, 10) in spans  # the unseen character is a piece of its own


def _mini_model(channels: int, order: str = "ab", prefix: str = "") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((channels, channels, 3, 3)).astype(np.float32), "w")
    a = helper.make_node(
        "Conv", ["x", "w"], ["c"], name=f"{prefix}conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
    )
    b = helper.make_node("Relu", ["c"], ["y"], name=f"{prefix}relu")
    nodes = [a, b] if order == "ab" else [b, a]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 8, 8])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_tokens_ignore_sizes_names_and_file_order():
    t1 = graph_tokens(StructGraph.from_graph(load(_mini_model(8))))
    t2 = graph_tokens(StructGraph.from_graph(load(_mini_model(32, order="ba", prefix="x_"))))
    assert t1 == t2 == ["Conv:k3x3.s1.g1|Input|Relu", "Relu|Conv|Output"]
    assert token_op(t1[0]) == "Conv" and token_op("<unk:Gelu>") == "Gelu"


def test_vocabulary_maps_unseen_tokens_to_unk_per_op():
    vocab = Vocabulary(["Relu|Conv|Output"])
    text, unknown = vocab.encode(["Relu|Conv|Output", "Sigmoid|Relu|Output"])
    assert len(text) == 2 and unknown == {1: "<unk:Sigmoid>"}
    assert text[1] not in vocab.alphabet()
