"""Target embeddings fitted on collected measurements (`predictor calibrate --from-db`), the held-out
split they respect, and where a predictor finds them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from predictor_fixtures import needs_data, store_with_rows

from autogo_deploy.cli.app import main
from autogo_deploy.errors import InputError
from autogo_deploy.predictor import checkpoint as ckpt
from autogo_deploy.predictor import own
from autogo_deploy.predictor.fewshot import _folds, fit_embedding
from autogo_deploy.predictor.inference import Predictor, embeddings_dir


def _with_holdout(tiny_checkpoint, folder, **train):
    man = dict(tiny_checkpoint.manifest, train=dict(tiny_checkpoint.manifest["train"], **train))
    return Predictor(ckpt.save(tiny_checkpoint.model, man, folder))


def test_folds_are_leave_one_out_for_few_and_k_fold_for_many():
    assert [f.tolist() for f in _folds(4)] == [[0], [1], [2], [3]]
    many = _folds(200)
    assert len(many) == 5 and sorted(np.concatenate(many).tolist()) == list(range(200))
    assert [f.tolist() for f in _folds(200)] == [f.tolist() for f in many]  # seeded


def test_fit_embedding_on_hundreds_of_rows_recovers_a_linear_target():
    rng = np.random.default_rng(1)
    basis = rng.uniform(0.1, 2.0, (300, 5))
    z_true = np.array([0.5, 2.0, 0.0, 1.0, 0.3])
    y = basis @ z_true
    z, rep = fit_embedding(basis, y, np.abs(rng.normal(1.0, 0.5, (4, 5))))
    assert rep["n"] == 300 and rep["lambda"] == min(
        rep["loo_median_abs_log_error"], key=rep["loo_median_abs_log_error"].get
    )
    assert np.max(np.abs(basis @ z / y - 1)) < 0.02


@needs_data
def test_held_out_split_covers_rows_newer_than_the_checkpoint(tmp_path, tiny_checkpoint):
    target = tiny_checkpoint.model.devices[0]
    ids = store_with_rows(tmp_path / "m.sqlite", target, 40)
    other = store_with_rows(tmp_path / "m.sqlite", "npu-sim", 40)[40:]  # a target training never saw
    pred = _with_holdout(tiny_checkpoint, tmp_path / "c", own_targets=[target], own_holdout_ids=ids[:3],
                         own_max_id=ids[9])  # fmt: skip
    from autogo_deploy.predictor.collect import MeasurementStore

    store = MeasurementStore(tmp_path / "m.sqlite")
    rows = store.rows()
    store.close()
    held = own.held_out_ids(pred, rows)
    newer, untrained = {i for i in held if i in ids[10:]}, held & set(other)
    assert set(ids[:3]) <= held and not held & set(ids[3:10])  # trained rows stay trained
    assert 0 < len(newer) < 30 and 0 < len(untrained) < 40  # a fixed ~20% of what training never saw
    assert held == own.held_out_ids(pred, rows)
    assert {r["id"] for r in own.own_holdout(pred, tmp_path / "m.sqlite")} == held


@needs_data
def test_calibrate_from_store_fits_outside_the_holdout_and_is_found_in_the_checkpoint(
    tmp_path, tiny_checkpoint
):
    target = "ort-cpu"
    ids = store_with_rows(tmp_path / "m.sqlite", target, 30)
    pred = _with_holdout(tiny_checkpoint, tmp_path / "c", own_targets=[target], own_holdout_ids=ids[:6],
                         own_max_id=ids[-1])  # fmt: skip
    emb = own.calibrate_from_store(pred, target, db=tmp_path / "m.sqlite")
    assert emb.method == "collected" and emb.checkpoint == pred.id
    assert emb.fit["measurements"] == 24 and emb.fit["held_out_excluded"] == 6
    assert emb.fit["spaces"] == {"nb201": 12, "zoo-walk": 12} and emb.z_energy is not None
    with pytest.raises(InputError, match="holds 24 usable ort-cpu measurements .* need at least 25"):
        own.calibrate_from_store(pred, target, db=tmp_path / "m.sqlite", min_rows=25)
    with pytest.raises(InputError):  # the tiny checkpoint never trained on ort-cpu
        pred.embedding(target)
    emb.save(ckpt.embedding_file(pred.checkpoint.path, target))
    assert pred.embedding(target).method == "collected"
    # an embedding calibrated on this machine (cache folder) still wins over the checkpoint's
    cached = type(emb)(name=target, z_latency=emb.z_latency, method="fewshot", checkpoint=pred.id)
    cached.save(embeddings_dir(pred.id) / f"{target}.json")
    assert pred.embedding(target).method == "fewshot"
    (embeddings_dir(pred.id) / f"{target}.json").unlink()


@needs_data
def test_calibrate_cli_from_db_into_checkpoint(tmp_path, capsys, tiny_checkpoint):
    ids = store_with_rows(tmp_path / "m.sqlite", "ort-cpu", 30)
    pred = _with_holdout(tiny_checkpoint, tmp_path / "c", own_targets=["ort-cpu"], own_holdout_ids=ids[:6],
                         own_max_id=ids[-1])  # fmt: skip
    folder = str(pred.checkpoint.path)
    code = main(["predictor", "calibrate", "-t", "ort-cpu", "--from-db", "--db", str(tmp_path / "m.sqlite"),
                 "--checkpoint", folder, "--into-checkpoint", "--json"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stored"] == str(ckpt.embedding_file(folder, "ort-cpu")) and doc["fit"]["measurements"] == 24
    assert Predictor.load(folder).embedding("ort-cpu").method == "collected"
    assert main(["predictor", "calibrate", "-t", "ort-cpu", "--db", str(tmp_path / "m.sqlite")]) == 2
    assert "--db needs --from-db" in capsys.readouterr().err
