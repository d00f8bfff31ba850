"""ORT backend: availability, kernel -> graph-node mapping, and the harness's JSON on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import make_tiny_cnn

from autogo_deploy.backends import availability, harness
from autogo_deploy.backends.base import make_inputs
from autogo_deploy.backends.ort import compose_mapping, map_stage
from autogo_deploy.errors import AutogoError, InputError
from autogo_deploy.measure import measure
from autogo_deploy.target import load_target

QUICK = {"min_runs": 8, "max_runs": 30, "time_cap_s": 2.0, "warmup": 2}
RULES = {"name", "tensor", "fused", "inferred", "inserted"}


def _graph(nodes, inputs=("x",), outputs=("y",)):
    return helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
    )


N = helper.make_node


def test_availability_and_harness_of_ort_targets():
    cpu = load_target("ort-cpu")
    assert availability(cpu)[0]
    assert harness(cpu).name == "ort_harness.py" and harness(cpu).is_file()


def test_map_stage_fusion_rules():
    original = _graph(
        [
            N("Conv", ["x", "w"], ["c1"], name="conv1"),
            N("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn1"], name="bn1"),
            N("Relu", ["bn1"], ["r1"], name="relu1"),
            N("Conv", ["r1", "w2"], ["c2"], name="conv2"),
            N("Add", ["c2", "r1"], ["a"], name="add"),
            N("Relu", ["a"], ["y"], name="relu2"),
        ]
    )
    # like ORT "basic": BN folded into conv1 (conv1 now writes bn1's tensor)
    basic = _graph(
        [
            N("Conv", ["x", "w_fused"], ["bn1"], name="conv1"),
            N("Relu", ["bn1"], ["r1"], name="relu1"),
            N("Conv", ["r1", "w2"], ["c2"], name="conv2"),
            N("Add", ["c2", "r1"], ["a"], name="add"),
            N("Relu", ["a"], ["y"], name="relu2"),
        ]
    )
    step = map_stage(original, basic)
    assert step["conv1"] == (["conv1", "bn1"], "fused")
    assert step["relu1"] == (["relu1"], "name")
    # like ORT "all": NCHWc kernels named after a tensor, Add+Relu fused into conv2, a Reorder inserted
    nchwc = _graph(
        [
            N("Conv", ["x", "w_fused"], ["t0"], name="r1_nchwc", domain="com.microsoft.nchwc"),
            N("Conv", ["t0", "w2", "t0"], ["t1"], name="c2_nchwc", domain="com.microsoft.nchwc"),
            N("ReorderOutput", ["t1"], ["y"], name="ReorderOutput", domain="com.microsoft.nchwc"),
        ]
    )
    mapping = compose_mapping(original, [basic, nchwc])
    assert mapping["r1_nchwc"]["graph_nodes"] == ["conv1", "bn1", "relu1"]
    assert mapping["r1_nchwc"]["mapping"] in ("fused", "inferred")
    assert mapping["c2_nchwc"]["graph_nodes"] == ["conv2", "add", "relu2"]
    assert mapping["c2_nchwc"]["mapping"] == "inferred"
    assert mapping["ReorderOutput"] == {"graph_nodes": [], "mapping": "inserted"}
    covered = [n for m in mapping.values() for n in m["graph_nodes"]]
    assert sorted(covered) == sorted(n.name for n in original.node)  # each node exactly once


def test_identity_mapping_when_nothing_changes():
    g = _graph([N("Relu", ["x"], ["h"], name="a"), N("Sigmoid", ["h"], ["y"], name="b")])
    mapping = compose_mapping(g, [g])
    assert mapping == {
        "a": {"graph_nodes": ["a"], "mapping": "name"},
        "b": {"graph_nodes": ["b"], "mapping": "name"},
    }


def _run_harness(model_path, *, per_node=False, target="ort-cpu", extra=()):
    tgt = load_target(target).with_protocol(**QUICK)
    cmd = [
        sys.executable,
        str(harness(tgt)),
        "--model",
        str(model_path),
        "--target-json",
        tgt.to_json(),
        *extra,
    ]
    if per_node:
        cmd.append("--per-node")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout  # exactly one JSON object on stdout
    return proc.returncode, json.loads(lines[0]), proc.stderr


@pytest.fixture(scope="module")
def tiny_static(tmp_path_factory):
    path = tmp_path_factory.mktemp("ort") / "tiny.onnx"
    onnx.save(make_tiny_cnn(batch=1), path)
    return path


def test_harness_json_with_per_node_times_covers_every_graph_node(tiny_static):
    code, doc, stderr = _run_harness(tiny_static, per_node=True)
    assert code == 0, doc
    assert doc["schema"] == 1 and doc["error"] is None
    assert len(doc["samples_ms"]) >= QUICK["min_runs"] and min(doc["samples_ms"]) > 0
    assert doc["method"]["threads"] == 1 and doc["method"]["stop_reason"] in (
        "converged",
        "max_runs",
        "time_cap",
    )
    assert doc["env"]["execution_provider"] == "CPUExecutionProvider"
    assert doc["deterministic"] is False
    assert "AUTOGO_PROGRESS" in stderr
    graph_nodes = {n.name for n in make_tiny_cnn(batch=1).graph.node}
    kernels = doc["per_node"]
    assert kernels and all(k["ms"] > 0 and k["op_type"] for k in kernels)
    assert all(k["mapping"] in RULES for k in kernels)
    covered = [n for k in kernels for n in k["graph_nodes"]]
    assert sorted(covered) == sorted(graph_nodes)  # every node attributed exactly once
    profile = doc["method"]["per_node_profile"]
    assert profile["unattributed_graph_nodes"] == [] and profile["profiled_runs"] >= 3
    conv_kernel = next(k for k in kernels if "conv1" in k["graph_nodes"])
    assert {"conv1", "bn1", "relu1"} <= set(conv_kernel["graph_nodes"])  # ORT fuses Conv+BN+Relu


@pytest.mark.parametrize("level", ["disable", "basic", "extended"])
def test_per_node_mapping_at_lower_optimization_levels(tmp_path, tiny_static, level):
    toml = tmp_path / f"ort-{level}.toml"
    toml.write_text(
        f'[target]\nbackend = "ort"\ndevice = "cpu"\n[backend]\ngraph_optimization_level = "{level}"\nthreads = 1\n'
    )
    m = measure(tiny_static, str(toml), per_node=True, **QUICK)
    covered = sorted(n for k in m.per_node for n in k["graph_nodes"])
    assert covered == sorted(n.name for n in make_tiny_cnn(batch=1).graph.node)
    if level == "disable":
        assert all(k["mapping"] == "name" for k in m.per_node)


def test_harness_names_unnamed_nodes(tmp_path):
    model = make_tiny_cnn(batch=1)
    for node in model.graph.node:
        node.name = ""
    path = tmp_path / "unnamed.onnx"
    onnx.save(model, path)
    code, doc, _ = _run_harness(path, per_node=True)
    assert code == 0, doc
    assert doc["method"]["renamed_nodes"] == len(model.graph.node)
    covered = {n for k in doc["per_node"] for n in k["graph_nodes"]}
    assert covered == {f"{n.op_type}_{i}" for i, n in enumerate(model.graph.node)}


def test_harness_error_is_one_json_line(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model")
    code, doc, _ = _run_harness(path)
    assert code != 0
    assert doc["schema"] == 1 and doc["error"] and "\n" not in doc["error"]


def test_unknown_execution_provider_is_unavailable(tmp_path):
    toml = tmp_path / "weird.toml"
    toml.write_text('[target]\nbackend = "ort"\ndevice = "cpu"\n[backend]\nexecution_provider = "tpu"\n')
    ok, reason = load_target(str(toml)).available()
    assert not ok and "execution_provider" in reason


def test_integer_and_bool_inputs_get_seeded_feeds(tmp_path):
    graph = helper.make_graph(
        [
            N("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
            N("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
            N("Mul", ["f", "mf"], ["y"], name="mul"),
        ],
        "ints",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.zeros(1, np.float32), "unused")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "ints.onnx"
    onnx.save(model, path)
    code, doc, _ = _run_harness(path)
    assert code == 0, doc


def test_cuda_harness_runs_on_a_gpu_machine(tiny_static):
    target = load_target("ort-cuda")
    ok, reason = target.available()
    if not ok:
        pytest.skip(f"ort-cuda unavailable: {reason}")
    m = measure(tiny_static, target, per_node=True, **QUICK)
    assert m.method["ep"] == "CUDAExecutionProvider" and m.p50_ms > 0


def test_cuda_options_are_checked(tmp_path):
    head = '[target]\nbackend = "ort"\ndevice = "cuda"\n[backend]\nexecution_provider = "cuda"\n'
    algo = tmp_path / "algo.toml"
    algo.write_text(head + 'cudnn_conv_algo_search = "fastest"\n')
    ok, reason = load_target(str(algo)).available()
    assert not ok and "cudnn_conv_algo_search" in reason and "heuristic" in reason
    graph = tmp_path / "graph.toml"
    graph.write_text(head + 'cuda_graph = "yes"\n')
    with pytest.raises(InputError, match="cuda_graph must be true or false"):
        load_target(str(graph))


def test_cuda_graph_on_the_cpu_provider_is_one_clear_error(tmp_path, tiny_static):
    toml = tmp_path / "cpu-graph.toml"
    toml.write_text('[target]\nbackend = "ort"\ndevice = "cpu"\n[backend]\ncuda_graph = true\nthreads = 1\n')
    with pytest.raises(AutogoError, match="cuda_graph needs execution_provider = 'cuda'"):
        measure(tiny_static, str(toml), **QUICK)


def test_cuda_graph_runner_matches_a_plain_run_on_a_gpu_machine(tiny_static):
    """The CUDA-graph runner (IOBinding, outputs preallocated on the GPU) computes what a plain run does."""
    target = load_target("ort-cuda")
    ok, reason = target.available()
    if not ok:
        pytest.skip(f"ort-cuda unavailable: {reason}")
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.spec_from_file_location("ort_harness_under_test", target.harness_path())
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = onnx.load(tiny_static)
    feeds = make_inputs(model, 0)
    plain = ort.InferenceSession(str(tiny_static), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    sess = ort.InferenceSession(str(tiny_static), providers=mod._providers("cuda", {}, graph=True))
    run = mod._runner(ort, sess, feeds, graph=True, device_id=0, model=model)
    for _ in range(3):  # capture, then replays
        run()
    np.testing.assert_allclose(run.io.copy_outputs_to_cpu()[0], plain, rtol=1e-3, atol=1e-4)
    m = measure(tiny_static, target, per_node=True, **QUICK)
    assert m.method["cuda_graph"] is True and m.p50_ms > 0


def test_cuda_graph_binding_preallocates_static_outputs_and_refuses_dynamic_ones(tiny_static):
    """The binding half of the CUDA-graph runner, with a stand-in for ORT (runs without a GPU): inputs
    copied to the device once, outputs preallocated there with the model's shape and element type,
    a dynamic output refused with the setting to change."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location(
        "ort_harness_binding", load_target("ort-cuda").harness_path()
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    calls = []

    class Binding:
        def bind_ortvalue_input(self, name, value):
            calls.append(("in", name, value))

        def bind_ortvalue_output(self, name, value):
            calls.append(("out", name, value))

    class OrtValue:
        ortvalue_from_numpy = staticmethod(lambda arr, dev, i: ("copy", arr.shape, str(arr.dtype), dev, i))
        ortvalue_from_shape_and_type = staticmethod(
            lambda shape, dt, dev, i: ("alloc", shape, str(dt), dev, i)
        )

    model = onnx.load(tiny_static)
    out = model.graph.output[0]
    shape = [d.dim_value for d in out.type.tensor_type.shape.dim]
    sess = SimpleNamespace(
        io_binding=Binding,
        get_outputs=lambda: [SimpleNamespace(name=out.name, shape=shape, type="tensor(float)")],
    )
    feeds = make_inputs(model, 0)
    mod._runner(SimpleNamespace(OrtValue=OrtValue), sess, feeds, graph=True, device_id=1, model=model)
    ((name, arr),) = feeds.items()
    assert calls == [
        ("in", name, ("copy", arr.shape, "float32", "cuda", 1)),
        ("out", out.name, ("alloc", shape, "float32", "cuda", 1)),
    ]
    dynamic = SimpleNamespace(
        io_binding=Binding,
        get_outputs=lambda: [SimpleNamespace(name=out.name, shape=["N", 10], type="tensor(float)")],
    )
    with pytest.raises(mod.HarnessError, match="set cuda_graph = false"):
        mod._runner(SimpleNamespace(OrtValue=OrtValue), dynamic, feeds, graph=True, device_id=0, model=model)
