"""NB101 zoo networks: nasbench channel arithmetic, pruning, NASLib keys, flops vs the shared data."""

from __future__ import annotations

import importlib
import json

import numpy as np
import onnx
import pytest
from zoo_reference import run_ort

from autogo_deploy import graph, zoo
from autogo_deploy.errors import InputError
from autogo_deploy.paths import shared_data_dir
from autogo_deploy.zoo.reference_counts import naslib_flops, trainable_params

nb101 = importlib.import_module("autogo_deploy.zoo.nb101")
C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


def _data():
    path = shared_data_dir(required=False)
    if path is None:
        pytest.skip("../shared/data not available")
    return json.loads((path / "nb101" / "nb101_500archs_naslib.json").read_text())["nasbench101"]["cifar10"]


def test_vertex_channels_follow_nasbench():
    # output fed by vertices 1, 2, 4: 128 // 3 = 42 rem 2 -> 43, 43, 42; vertex 3 feeds 4 -> max = 42
    m = np.zeros((6, 6), int)
    m[0, 1] = m[0, 2] = m[0, 3] = m[3, 4] = m[1, 5] = m[2, 5] = m[4, 5] = 1
    assert nb101.vertex_channels(64, 128, m) == [64, 43, 43, 42, 42, 128]


def test_cell_structure_and_truncation():
    # three output inputs: 128 -> 43/43/42 and 512 -> 171/171/170 need no truncation on edge 1->2, but
    # 256 -> 86/85/85 does: one Slice in each of the 3 cells of the middle stack
    m = np.zeros((5, 5), int)
    m[0, 1] = m[1, 2] = m[1, 4] = m[2, 4] = m[0, 3] = m[3, 4] = 1
    model = nb101.nb101(m, ["input", C3, C1, MP, "output"])
    onnx.checker.check_model(model, full_check=True)
    g = graph.load(model, cleanup=False)
    ops = g.op_histogram()
    assert ops["Slice"] == 3 and ops["Concat"] == 9
    assert [g.shape(n.outputs[0])[1] for n in g.nodes if n.op_type == "Slice"] == [85, 85, 85]
    out = run_ort(model, np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_pruning_and_input_to_output_only():
    # vertex 2 is a dead end (no path to output): pruned; vertex 3 is unreachable from input: pruned
    m = np.zeros((5, 5), int)
    m[0, 1] = m[1, 4] = m[0, 2] = m[3, 4] = 1
    pm, ops = nb101.prune(m, ["input", C3, C1, MP, "output"])
    assert ops == ["input", C3, "output"] and pm.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    direct = nb101.nb101([[0, 1], [0, 0]], ["input", "output"])
    assert graph.load(direct, cleanup=False).op_histogram()["Conv"] == 1 + 9  # stem + one projection per cell


def test_naslib_op_ids_against_the_data():
    """Op id 3 = conv1x1, 4 = conv3x3 (swapping them breaks the parameter counts)."""
    data = _data()
    key, rec = next(iter(data.items()))
    matrix, ops = nb101.spec_from_naslib_key(key)
    g = graph.load(nb101.nb101(matrix, ops), cleanup=False)
    assert trainable_params(g) == pytest.approx(rec["params"] * 1e6, rel=1e-5)


def test_flops_agreement_sample():
    """A spread sample of the 500 (the full set runs as a slow test and in benchmarks/graph_ingest.py)."""
    data = list(_data().items())
    for key, rec in data[::25]:
        matrix, ops = nb101.spec_from_naslib_key(key)
        g = graph.load(nb101.nb101(matrix, ops), cleanup=False)
        assert naslib_flops(g) == pytest.approx(rec["flops"] * 1e6, rel=0.01)
        assert trainable_params(g) == pytest.approx(rec["params"] * 1e6, rel=0.01)
        assert g.totals()["macs"] < rec["flops"] * 1e6  # pure MACs leave out BN/ReLU/pool work


@pytest.mark.slow
def test_flops_agreement_all_500():
    for key, rec in _data().items():
        g = graph.load(nb101.nb101(*nb101.spec_from_naslib_key(key)), cleanup=False)
        assert naslib_flops(g) == pytest.approx(rec["flops"] * 1e6, rel=0.01)


def test_spec_forms_through_build():
    matrix = np.zeros((7, 7), int)
    matrix[0, 1] = matrix[1, 6] = 1  # vertices 2..5 are pruned: the key form and JSON form agree
    key = "(" + ", ".join(str(v) for v in matrix.flatten()) + ", 0, 3, 2, 2, 4, 4, 1)"
    a = zoo.build("nb101", arch=key)
    spec = {"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["input", C1, "output"]}
    assert a.SerializeToString() == zoo.build("nb101", arch=json.dumps(spec)).SerializeToString()
    assert a.SerializeToString() == zoo.build("nb101", arch=spec).SerializeToString()


@pytest.mark.parametrize(
    "matrix, ops, fragment",
    [
        ([[0, 1], [0, 0]], ["input", "conv"], "start with 'input' and end with 'output'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "unknown NB101 op"),
        ([[0, 1], [1, 0]], ["input", "output"], "upper-triangular"),
        ([[0, 0, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"], "not reachable"),
        ([[0, 1, 0], [0, 0, 1]], ["input", C3, "output"], "square"),
        (np.triu(np.ones((7, 7), int), 1), ["input"] + [C3] * 5 + ["output"], "at most 9"),
    ],
)
def test_bad_specs(matrix, ops, fragment):
    with pytest.raises(InputError, match=fragment):
        nb101.nb101(matrix, ops)


@pytest.mark.parametrize(
    "key", ["1 2 3", "(" + ", ".join(["0"] * 49) + ", 0, 9, 9, 9, 9, 9, 1)", "{bad json"]
)
def test_bad_keys(key):
    with pytest.raises(InputError):
        nb101.parse_spec(key)
