"""`autogo-deploy predictor fewshot|accuracy|eval` in-process on the tiny checkpoint."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from predictor_fixtures import needs_data

from autogo_deploy.cli.app import main
from autogo_deploy.predictor import datasets as ds

SUBSET = 60


@pytest.fixture
def few_archs(monkeypatch):
    """Restrict 'every arch of the space' to a slice so the test stays fast (the full run is -m slow)."""
    from autogo_deploy.zoo.nb201 import arch_from_ordinal

    archs = [arch_from_ordinal(i * 257) for i in range(SUBSET)]
    monkeypatch.setattr(ds, "all_nb201_archs", lambda: archs)
    return archs


def _ref_csv(path, device="silver_4114", k=10):
    lat = ds.nb201_latency()
    col = lat.columns.index(device)
    pos = {a: i for i, a in enumerate(lat.archs)}
    refs = ds.reference_archs("nb201")[:k]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch_str", "latency_ms"])
        for a in refs:
            w.writerow([a, lat.values[pos[a], col]])
    return path


@needs_data
def test_fewshot_cli_writes_every_arch(tmp_path, capsys, tiny_checkpoint, few_archs):
    ref = _ref_csv(tmp_path / "ref.csv")
    out = tmp_path / "pred.csv"
    code = main(["predictor", "fewshot", "--space", "nb201", "--measurements", str(ref), "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint.path), "--json"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == SUBSET and doc["source"] == "predicted"
    assert doc["embedding"]["fit"]["reference_archs_used"] == 10
    rows = list(csv.DictReader(out.open()))
    assert [r["arch_str"] for r in rows] == few_archs
    values = np.array([float(r["predicted_latency_ms"]) for r in rows])
    assert np.all(np.isfinite(values)) and np.all(values > 0)


@needs_data
def test_fewshot_cli_bad_csv_is_exit_2(tmp_path, capsys, tiny_checkpoint, few_archs):
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,ms\nx,1\n")
    code = main(["predictor", "fewshot", "--measurements", str(bad), "--out", str(tmp_path / "p.csv"),
                 "--checkpoint", str(tiny_checkpoint.path)])  # fmt: skip
    assert code == 2
    assert "arch_str,latency_ms" in capsys.readouterr().err
    bad.write_text("arch_str,latency_ms\n|nope~0|,3\n")
    assert main(["predictor", "fewshot", "--measurements", str(bad), "--out", str(tmp_path / "p.csv"),
                 "--checkpoint", str(tiny_checkpoint.path)]) == 2  # fmt: skip


@needs_data
def test_accuracy_cli(tmp_path, capsys, tiny_checkpoint, few_archs):
    out = tmp_path / "acc.csv"
    code = main(["predictor", "accuracy", "--space", "nb201", "--out", str(out), "--checkpoint",
                 str(tiny_checkpoint.path)])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == SUBSET and set(rows[0]) == {"arch_str", "predicted_cifar10_acc"}
    acc = np.array([float(r["predicted_cifar10_acc"]) for r in rows])
    assert np.all((acc > 0) & (acc < 100))


def test_unknown_space_is_exit_2(tmp_path, capsys):
    assert main(["predictor", "accuracy", "--space", "nb999", "--out", str(tmp_path / "a.csv")]) == 2
    assert "nb999" in capsys.readouterr().err


@pytest.mark.slow
@needs_data
def test_fewshot_cli_full_space(tmp_path, capsys, tiny_checkpoint):
    ref = _ref_csv(tmp_path / "ref.csv")
    out = tmp_path / "pred.csv"
    assert main(["predictor", "fewshot", "--measurements", str(ref), "--out", str(out), "--checkpoint",
                 str(tiny_checkpoint.path)]) == 0  # fmt: skip
    assert sum(1 for _ in out.open()) == 15_625 + 1
