"""`autogo-deploy predictor fewshot|accuracy|eval` in-process on the tiny checkpoint."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from predictor_fixtures import needs_data, store_with_rows

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


def _fewshot(tmp_path, ckpt, measurements, out="pred.csv"):
    return main(["predictor", "fewshot", "--measurements", str(measurements), "--out", str(tmp_path / out),
                 "--checkpoint", str(ckpt.path), "--json"])  # fmt: skip


def test_read_measurements_bom_non_utf8_and_duplicates(tmp_path):
    """Pure CSV reading (no data needed): Excel's BOM, latin-1 bytes, exact and conflicting twins."""
    from autogo_deploy.errors import InputError
    from autogo_deploy.predictor.tasks import read_measurements
    from autogo_deploy.zoo.nb201 import arch_from_ordinal

    a, b, c = (arch_from_ordinal(i) for i in (1, 2, 3))
    bom = tmp_path / "excel.csv"
    bom.write_text(f"arch_str,latency_ms\n{a},1.5\n{b},2.5\n", encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_measurements(bom) == [(a, 1.5), (b, 2.5)]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"arch_str,latency_ms,note\n{a},1.5,café\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        read_measurements(latin1)
    assert info.value.one_line() == f"{latin1} is not UTF-8 text" and info.value.exit_code == 2
    dup = tmp_path / "dup.csv"
    dup.write_text(f"arch_str,latency_ms\n{a},1.5\n{b},2.5\n{a},1.5\n{c},3\n{b},2.5000000000001\n")
    notes = []
    assert read_measurements(dup, notes.append) == [(a, 1.5), (b, 2.5), (c, 3.0)]  # first value kept
    assert notes == [f"{dup}: 2 duplicate row(s) merged, 3 distinct archs"]
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(f"arch_str,latency_ms\n{a},1.5\n{b},2.5\n{a},{1.5 * (1 + 1e-8)!r}\n")
    with pytest.raises(InputError) as info:
        read_measurements(conflict)
    text = info.value.one_line()
    assert text.startswith(f"{conflict}:4: {a} measured again with latency_ms 1.500000015")
    assert "(line 2 has 1.5)" in text


@needs_data
def test_fewshot_cli_accepts_an_excel_bom_csv(tmp_path, capsys, tiny_checkpoint, few_archs):
    plain = _ref_csv(tmp_path / "ref.csv")
    bom = tmp_path / "excel.csv"
    bom.write_text(plain.read_text(), encoding="utf-8-sig")
    assert _fewshot(tmp_path, tiny_checkpoint, bom) == 0
    assert json.loads(capsys.readouterr().out)["embedding"]["fit"]["reference_archs_used"] == 10


@needs_data
def test_fewshot_cli_non_utf8_csv_is_exit_2(tmp_path, capsys, tiny_checkpoint, few_archs):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        _ref_csv(tmp_path / "ref.csv").read_text().replace("\n", ",\xe9\n", 1).encode("latin-1")
    )
    assert _fewshot(tmp_path, tiny_checkpoint, latin1) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {latin1} is not UTF-8 text"


@needs_data
def test_fewshot_cli_fits_each_reference_arch_once(tmp_path, capsys, tiny_checkpoint, few_archs):
    """The 10 references listed twice give exactly the fit and predictions of the 10 listed once."""
    once = _ref_csv(tmp_path / "ref.csv")
    header, *body = once.read_text().splitlines(keepends=True)
    twice = tmp_path / "twice.csv"
    twice.write_text(header + "".join(body + body[::-1]))
    assert _fewshot(tmp_path, tiny_checkpoint, once, "pred_once.csv") == 0
    fit_once = json.loads(capsys.readouterr().out)["embedding"]
    assert _fewshot(tmp_path, tiny_checkpoint, twice, "pred_twice.csv") == 0
    captured = capsys.readouterr()
    fit_twice = json.loads(captured.out)["embedding"]
    note = f"{twice}: 10 duplicate row(s) merged, 10 distinct archs"
    assert "".join(note.split()) in "".join(captured.err.split())  # the log line may be wrapped
    assert fit_twice["fit"]["reference_archs_used"] == 10 and fit_twice["fit"]["n"] == 10
    assert fit_twice["z_latency"] == fit_once["z_latency"] and fit_twice["fit"] == fit_once["fit"]
    read = [np.array([float(r["predicted_latency_ms"]) for r in csv.DictReader((tmp_path / f).open())])
            for f in ("pred_once.csv", "pred_twice.csv")]  # fmt: skip
    assert np.array_equal(read[0], read[1])


@needs_data
def test_fewshot_cli_refuses_conflicting_twins_and_too_few_distinct_archs(
    tmp_path, capsys, tiny_checkpoint, few_archs
):
    header, *body = _ref_csv(tmp_path / "ref.csv").read_text().splitlines(keepends=True)
    arch, value = body[3].strip().split(",")
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(header + "".join(body) + f"{arch},{float(value) * 1.1}\n")
    assert _fewshot(tmp_path, tiny_checkpoint, conflict) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: {conflict}:12: {arch} measured again" in err and f"(line 5 has {float(value)})" in err
    for k in (1, 2):  # one (or two) archs repeated: used to fit, and predict a constant, without a word
        same = tmp_path / f"same{k}.csv"
        same.write_text(header + "".join(body[:k] * 10))
        assert _fewshot(tmp_path, tiny_checkpoint, same) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"error: need at least 3 distinct reference archs, got {k}" in err
        assert not (tmp_path / "pred.csv").exists()


@needs_data
def test_eval_cli_reports_own_holdout_by_space(tmp_path, capsys, tiny_checkpoint, monkeypatch):
    """`predictor eval` scores the own measurements the checkpoint held out, per target and, when
    they mix spaces (NB201 networks, zoo mutants), per space."""
    from autogo_deploy.predictor import checkpoint as ckpt

    monkeypatch.setattr(ds, "nb201_split", lambda seed=0: (np.arange(50), np.arange(50, 80)))
    target = tiny_checkpoint.model.devices[0]
    ids = store_with_rows(tmp_path / "m.sqlite", target, 12)
    man = dict(
        tiny_checkpoint.manifest,
        train=dict(tiny_checkpoint.manifest["train"], own_targets=[target], own_holdout_ids=ids[:10]),
    )
    folder = ckpt.save(tiny_checkpoint.model, man, tmp_path / "ckpt").path

    code = main(
        ["predictor", "eval", "--checkpoint", str(folder), "--db", str(tmp_path / "m.sqlite"), "--json"]
    )
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["accuracy_cifar10"]["n"] == 30
    assert rep["own"][target]["n"] == 10
    assert {sp: m["n"] for sp, m in rep["own_by_space"][target].items()} == {"nb201": 5, "zoo-walk": 5}
