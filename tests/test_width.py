"""Main-path widths (width.py) and the width_drop budget that leashes them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autogo_deploy import proposers, zoo
from autogo_deploy.constraints import parse_budgets
from autogo_deploy.errors import InputError
from autogo_deploy.width import main_path_widths, width_drop


def _conv(name: str, x: str, y: str, cin: int, cout: int, inits: list) -> onnx.NodeProto:
    w = numpy_helper.from_array(np.ones((cout, cin, 1, 1), np.float32) * 0.1, f"{name}_w")
    inits.append(w)
    return helper.make_node("Conv", [x, w.name], [y], name=name)


def _net(main: int, branch: int) -> onnx.ModelProto:
    """x(8ch, 8x8) -> a -> [a + branch(a)] -> c -> narrow(main ch) -> y(8ch): a residual block whose
    branch squeezes to `branch` channels, then a main-path squeeze to `main` channels."""
    inits: list = []
    nodes = [
        _conv("stem", "x", "a", 8, 8, inits),
        _conv("b1", "a", "b", 8, branch, inits),
        _conv("b2", "b", "b2", branch, 8, inits),
        helper.make_node("Add", ["a", "b2"], ["c"], name="add"),
        _conv("n1", "c", "d", 8, main, inits),
        _conv("n2", "d", "y", main, 8, inits),
    ]
    g = helper.make_graph(
        nodes,
        "w",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_a_narrow_branch_is_not_the_main_path_a_narrow_cut_is():
    assert main_path_widths(_net(main=8, branch=8)) == {"8x8": 8}
    assert main_path_widths(_net(main=8, branch=1)) == {"8x8": 8}  # the skip carries the signal past it
    assert main_path_widths(_net(main=2, branch=8)) == {"8x8": 2}  # everything passes through 2 channels


def test_zoo_networks():
    assert main_path_widths(zoo.build("resnet18")) == {
        "224x224": 3, "112x112": 64, "56x56": 64, "28x28": 128, "14x14": 256, "7x7": 512, "1x1": 512,
    }  # fmt: skip
    # the image counts only where no feature map lives: NB201's stem output (16) is the floor at 32x32
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert main_path_widths(zoo.nb201(arch)) == {"32x32": 16, "16x16": 32, "8x8": 64, "1x1": 64}
    # ... and so does its preprocessing: EDSR's mean shift (3 channels) is not the floor at 64x64,
    # its head convolution's 64 channels are (the body sits in a global residual: not main path)
    assert main_path_widths(zoo.build("edsr")) == {"64x64": 64, "128x128": 3}


def test_width_drop_is_the_worst_shared_resolution():
    base = {"28x28": 512, "14x14": 1024, "7x7": 2048}
    assert width_drop(base, base) == 0.0
    assert width_drop(base, {"28x28": 256, "14x14": 1024, "7x7": 16}) == pytest.approx(1 - 16 / 2048)
    assert width_drop(base, {"28x28": 1024, "3x3": 1}) == 0.0  # wider, or a resolution the input lacks
    assert width_drop({}, {"7x7": 1}) == 0.0


def test_width_drop_budget():
    b = parse_budgets(["width_drop=0.5"])
    assert b.violations({"width_drop": 0.5}) == [] and b.violations({"width_drop": 0.75}) == ["width_drop"]
    assert parse_budgets(["width_drop=0"]).limits["width_drop"] == 0.0  # none lost: fine
    with pytest.raises(InputError, match="share"):
        parse_budgets(["width_drop=2"])


def test_the_proposer_drops_mutants_below_the_leash(monkeypatch):
    base = main_path_widths(_net(main=8, branch=8))
    monkeypatch.setitem(proposers._WORKER, "width_leash", (base, 0.5))
    assert not proposers._too_narrow(main_path_widths(_net(main=4, branch=1)))  # half: allowed
    assert proposers._too_narrow(main_path_widths(_net(main=2, branch=8)))
    monkeypatch.setitem(proposers._WORKER, "width_leash", None)
    assert not proposers._too_narrow(main_path_widths(_net(main=1, branch=8)))  # no leash
