"""Tiny training runs, determinism, and the safetensors + JSON checkpoint round trip (no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from predictor_fixtures import needs_data, tiny_trainset

from autogo_deploy.errors import InputError
from autogo_deploy.predictor import checkpoint as ckpt
from autogo_deploy.predictor.train import TrainConfig, predict_raw, train


@needs_data
def test_same_seed_same_weights_and_loss_goes_down():
    ts = tiny_trainset(32)
    cfg = TrainConfig(hidden=8, layers=1, basis=2, epochs=3, batch_size=8, seed=3)
    m1, s1 = train(ts, cfg)
    m2, _ = train(ts, cfg)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    hist = s1["history"]
    assert hist[-1]["lat_loss"] < hist[0]["lat_loss"]


@needs_data
def test_roundtrip_is_exact_and_pickle_free(tiny_checkpoint, tmp_path):
    folder = tiny_checkpoint.path
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["manifest.json", "model.safetensors"]
    assert (
        not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pth"))
    )
    head = (folder / "model.safetensors").read_bytes()[:2]
    assert head != b"\x80\x04" and head[:1] != b"\x80"  # not a pickle stream
    loaded = ckpt.load(folder)
    ts = tiny_trainset(12, seed=5)
    a1, b1 = predict_raw(tiny_checkpoint.model, ts.graphs)
    a2, b2 = predict_raw(loaded.model, ts.graphs)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    assert loaded.id == tiny_checkpoint.id == json.loads((folder / "manifest.json").read_text())["id"]


@needs_data
def test_tampered_weights_are_refused(tiny_checkpoint, tmp_path):
    import shutil

    copy = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint.path, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256"):
        ckpt.load(copy)


def test_missing_checkpoint_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no predictor checkpoint"):
        ckpt.load(tmp_path)


def _packaged_or_skip():
    folder = ckpt.packaged_dir()
    if not (folder / ckpt.MANIFEST).is_file():
        pytest.skip("no packaged checkpoint in this checkout")
    return folder


def test_packaged_checkpoint_is_small_safe_and_works_offline(tmp_path, monkeypatch):
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.inference import Predictor

    folder = _packaged_or_skip()
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("__"))
    embeddings = [f for f in files if f.startswith("embedding-") and f.endswith(".json")]
    assert sorted(set(files) - set(embeddings)) == ["manifest.json", "model.safetensors"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5 * 2**20
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path))  # no user state: the packaged one is used
    monkeypatch.delenv("AUTOGO_PREDICTOR_CHECKPOINT", raising=False)
    p = Predictor.load_default()
    assert p.checkpoint.path == folder
    emb = p.embedding("ort-cpu")
    if "embedding-ort-cpu.json" in embeddings:  # fitted on collected measurements for these weights
        assert emb.method == "collected" and emb.checkpoint == p.id and emb.fit["measurements"] > 100
    (pred,) = p.predict(
        [
            nb201_tensors(
                "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
            )
        ],
        emb,
    )
    assert 50 < pred.acc < 100 and pred.latency_ms > 0 and pred.source == "predicted"


def test_stale_cache_checkpoint_falls_back_to_packaged(tmp_path, monkeypatch):
    from autogo_deploy.predictor.inference import Predictor

    folder = _packaged_or_skip()
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AUTOGO_PREDICTOR_CHECKPOINT", raising=False)
    stale = ckpt.cache_checkpoint_dir()
    stale.mkdir(parents=True)
    (stale / ckpt.MANIFEST).write_text(json.dumps({"format": ckpt.FORMAT, "format_version": 0}))
    assert Predictor.load_default().checkpoint.path == folder
