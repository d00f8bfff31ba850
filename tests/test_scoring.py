"""The search's scorer (autogo_deploy.scoring): the target embedding it finds or calibrates."""

from __future__ import annotations

from types import SimpleNamespace

from autogo_deploy.paths import targets_dir
from autogo_deploy.predictor.inference import embeddings_dir
from autogo_deploy.scoring import make_scorer
from autogo_deploy.target import load_target


def test_a_target_given_as_a_file_is_calibrated_under_its_own_name(tmp_path, monkeypatch):
    """`optimize --target board.toml` on a target no predictor knows: calibrated on the spot (it was
    looked up by name among the packaged targets and refused)."""
    toml = tmp_path / "board.toml"
    toml.write_text(
        (targets_dir() / "ort-cpu.toml").read_text().replace('name = "ort-cpu"', 'name = "my-board"')
    )
    target = load_target(str(toml))
    measured = []

    def fake_measure(model_bytes, tgt, **_):  # the 10 reference networks, without running them
        measured.append(tgt.name)
        return SimpleNamespace(p50_ms=1.0 + 0.1 * len(measured), energy_mj=None)

    monkeypatch.setattr("autogo_deploy.measure.measure", fake_measure)
    lines = []
    _, info = make_scorer(target, log=lines.append)
    assert measured == ["my-board"] * 10 and info["target_embedding"] == "my-board (calibrated now)"
    assert any("calibrating the predictor for my-board" in line for line in lines)
    assert (embeddings_dir(info["checkpoint"]) / "my-board.json").is_file()
    _, again = make_scorer(load_target(str(toml)))  # found in the cache the second time
    assert again["target_embedding"] == "my-board (calibrated)" and len(measured) == 10
