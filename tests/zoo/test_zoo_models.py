"""The fixed zoo networks: MACs vs published figures, checker, onnxruntime, determinism, EDSR shuffle."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from zoo_reference import pixel_shuffle_torch, run_ort

from autogo_deploy import graph, zoo
from autogo_deploy.errors import InputError
from autogo_deploy.zoo import builder

# Published multiply-accumulates at 224x224 (torchvision / original papers), in GMACs.
PUBLISHED_GMACS = {
    "resnet18": 1.82,
    "resnet50": 4.09,
    "resnet101": 7.8,
    "vgg16_bn": 15.5,
    "mobilenet_v2": 0.30,
}
FAMILIES = ["resnet18", "vgg16_bn", "mobilenet_v2", "edsr", "nb201", "nb101", "fbnet"]


@pytest.fixture(scope="module")
def built():
    cache: dict[str, onnx.ModelProto] = {}

    def get(name: str) -> onnx.ModelProto:
        if name not in cache:
            cache[name] = zoo.build(name)
        return cache[name]

    yield get
    cache.clear()


def _features(model: onnx.ModelProto) -> graph.Graph:
    """graph.py's features without load()'s validation passes (VGG's 550 MB are serialised once, not 4x)."""
    from autogo_deploy.onnx_ingest import infer_static_shapes

    return graph.Graph(infer_static_shapes(model))


@pytest.mark.parametrize("name", list(PUBLISHED_GMACS))
def test_macs_match_published(built, name):
    macs = _features(built(name)).totals()["macs"]
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)


@pytest.mark.parametrize("name", FAMILIES)
def test_checker_and_onnxruntime(built, name):
    model = built(name)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.opset_import[0].version == 17
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    assert shape[0] == 1
    y = run_ort(model, np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    assert np.isfinite(y).all()
    if name != "edsr":  # classifiers: BN statistics from the moment estimate keep logits O(1)..O(10)
        assert np.abs(y).max() < 1e3


def test_resnet_structure(built):
    g = _features(built("resnet50"))
    assert g.op_histogram()["Conv"] == 53 and g.node("fc").out_shapes[0] == (1, 1000)
    # v1.5: the stride of a downsampling bottleneck sits on its 3x3 conv
    assert g.node("layer2.0.2.conv").stride == (2, 2) and g.node("layer2.0.1.conv").stride == (1, 1)


def test_edsr_structure_and_pixel_shuffle():
    g = graph.load(zoo.build("edsr", input_size=(12, 16)), cleanup=False)
    assert g.op_histogram()["Conv"] == 1 + 2 * 16 + 1 + 1 + 1
    assert g.op_histogram()["DepthToSpace"] == 1
    assert g.shape("output") == (1, 3, 24, 32)
    b = builder.NetBuilder("d2s", (1, 8, 2, 3))
    model = b.finish(b.depth_to_space("input", 2, name="ps"))
    x = np.arange(48, dtype=np.float32).reshape(1, 8, 2, 3)
    np.testing.assert_array_equal(run_ort(model, x), pixel_shuffle_torch(x, 2))


def test_same_seed_same_bytes_and_cache_independence():
    a = zoo.build("fbnet", seed=7).SerializeToString()
    builder._CACHE.clear()  # a cold cache must give the same bytes as a warm one
    assert zoo.build("fbnet", seed=7).SerializeToString() == a
    assert zoo.build("fbnet", seed=8).SerializeToString() != a
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
    one = zoo.build("nb201", arch=arch, seed=1).SerializeToString()
    builder._CACHE.clear()
    assert zoo.build("nb201", arch=arch, seed=1).SerializeToString() == one


def test_weights_are_kaiming_normal():
    model = zoo.build("resnet18", seed=0)
    w = next(
        onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "layer3.0.1.conv.weight"
    )
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert w.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.02)
    assert abs(w.mean()) < 1e-3


def test_catalog_and_errors():
    assert zoo.names() == [e.name for e in zoo.catalog()]
    expected = {
        "nb201",
        "nb101",
        "fbnet",
        "resnet18",
        "resnet50",
        "resnet101",
        "vgg16_bn",
        "mobilenet_v2",
        "edsr",
    }
    assert set(zoo.names()) == expected
    with pytest.raises(InputError, match="unknown zoo model") as info:
        zoo.build("resnet34")
    assert "available: nb201, nb101" in info.value.one_line()
    with pytest.raises(InputError, match="takes no arch"):
        zoo.build("resnet18", arch="x")
    with pytest.raises(InputError, match="unexpected keyword"):
        zoo.build("mobilenet_v2", widthmult=2)
    with pytest.raises(InputError, match="seed"):
        zoo.build("edsr", seed="1")
    with pytest.raises(InputError, match="NB101 arch"):
        zoo.build("nb101", arch=3)
