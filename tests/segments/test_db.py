"""The SQLite store: reproducible files, valid stored segments, compatible replacements, clean errors."""

from __future__ import annotations

import os
import shutil
import sqlite3
from fractions import Fraction

import onnx
import pytest

from autogo_deploy.errors import DatabaseError, InputError
from autogo_deploy.segments.build import build
from autogo_deploy.segments.db import SegmentDB, default_db, default_path
from autogo_deploy.segments.segment import Signature

TINY = {"families": "nb201,nb101,fbnet,resnet", "limit": 6, "vocab_size": 300, "chunk_size": 4}


def test_same_corpus_and_seed_give_a_byte_identical_file(tmp_path, small_db_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    build(a, jobs=1, **TINY)
    build(b, jobs=2, **TINY)  # scheduling over workers must not change a byte
    assert a.read_bytes() == b.read_bytes()
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"
    # and in a fresh interpreter (hash seeds, the Rust BPE trainer's maps)
    import subprocess
    import sys

    c = tmp_path / "c.db"
    code = f"from autogo_deploy.segments.build import build; build({str(c)!r}, jobs=1, **{TINY!r})"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert c.read_bytes() == a.read_bytes()


def test_every_segment_is_a_valid_standalone_model(small_db):
    n = 0
    for rec in small_db.iter_segments():
        model = rec.model()
        onnx.checker.check_model(model, full_check=True)
        assert len(model.graph.node) == rec.n_nodes == len(rec.ops)
        assert len(model.graph.input) == rec.n_inputs and len(model.graph.output) == rec.n_outputs
        assert [
            list(d.dim_value for d in vi.type.tensor_type.shape.dim) for vi in model.graph.input
        ] == rec.example_inputs
        n += 1
    assert n == small_db.stats()["segments"] > 50


def test_a_model_without_parameters_leaves_only_the_weighted_ops_parameters_empty(small_db):
    """params=False (what a mutation asks for: materialise draws or inherits every parameter) keeps
    the dims of each weighted op's parameters but no values; every other constant is filled."""
    from autogo_deploy.resolve_ops import PARAM_OPS

    checked = 0
    for rec in list(small_db.iter_segments())[:40]:
        full, bare = rec.model(seed=3), rec.model(seed=3, params=False)
        params = {t for n in bare.graph.node if n.op_type in PARAM_OPS for t in n.input[1:]}
        for a, b in zip(full.graph.initializer, bare.graph.initializer, strict=True):
            assert (a.name, list(a.dims)) == (b.name, list(b.dims))
            if a.name in params:
                assert a.raw_data and not b.raw_data, a.name
                checked += 1
            else:
                assert a.SerializeToString() == b.SerializeToString(), a.name
        assert [n.SerializeToString() for n in full.graph.node] == [
            n.SerializeToString() for n in bare.graph.node
        ]
    assert checked > 20


def test_stored_models_run_and_match_their_records(small_db):
    from autogo_deploy.graph import load

    for rec in list(small_db.iter_segments())[:25]:
        model = rec.model()
        assert [n.op_type for n in model.graph.node] == rec.ops  # stored in segment-canonical order
        g = load(model, cleanup=False)
        assert g.totals()["macs"] == rec.macs
        assert sorted(n.op_type for n in g.nodes) == sorted(rec.ops)


def test_replacements_are_boundary_compatible(small_db):
    checked = 0
    for rec in list(small_db.iter_segments())[:40]:
        for sub in small_db.replacements(rec, limit=20):
            assert sub.hash != rec.hash
            assert (sub.n_inputs, sub.n_outputs) == (rec.n_inputs, rec.n_outputs)
            assert sub.spatial_ratio == rec.spatial_ratio and sub.channel_ratio == rec.channel_ratio
            checked += 1
        for sub in small_db.replacements(rec.signature, limit=50, channel_ratio_range=(0.5, 2.0)):
            assert sub.spatial_ratio == rec.spatial_ratio
            assert Fraction(1, 2) <= sub.channel_ratio <= 2
    assert checked > 0
    subs = small_db.replacements(Signature(1, 1, Fraction(1), Fraction(1)), limit=5)
    assert len(subs) <= 5 and [s.count for s in subs] == sorted((s.count for s in subs), reverse=True)
    with pytest.raises(InputError):
        small_db.replacements(object(), limit=3)


def test_get_and_stats(small_db):
    rec = small_db.get(1)
    assert rec.sources and rec.families and sum(rec.families.values()) == rec.count
    assert small_db.by_hash(rec.hash).id == 1
    with pytest.raises(InputError):
        small_db.get(10**9)
    stats = small_db.stats()
    assert stats["multi_node_pieces"] > 0 and stats["segments"] == sum(
        r["segments"] for r in stats["by_size"]
    )


def _expect_db_error(path, match):
    with pytest.raises(DatabaseError, match=match):
        SegmentDB(path)


def test_corrupt_foreign_and_mismatched_files_raise_database_error(tmp_path, small_db_path):
    _expect_db_error(tmp_path / "missing.db", "not found")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    _expect_db_error(junk, "not a SQLite database")
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(small_db_path.read_bytes()[:2048])
    _expect_db_error(truncated, "corrupt|not an autogo")
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.close()
    _expect_db_error(foreign, "not an autogo-deploy segment database")
    old = tmp_path / "old.db"
    shutil.copy(small_db_path, old)
    con = sqlite3.connect(old)
    con.execute("UPDATE schema_version SET version = 0")
    con.commit()
    con.close()
    _expect_db_error(old, "schema version 0")


def test_cli_reports_a_corrupt_database_with_exit_2(tmp_path, capsys):
    from autogo_deploy.cli.app import main

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 10)
    assert main(["db", "stats", "--db", str(junk)]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_stats_show_segment(small_db_path, tmp_path, capsys):
    import json

    from autogo_deploy import zoo
    from autogo_deploy.cli.app import main

    assert main(["db", "stats", "--db", str(small_db_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["segments"] > 0
    assert (
        main(["db", "show", "1", "--db", str(small_db_path), "--json", "--onnx", str(tmp_path / "s.onnx")])
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == 1 and (tmp_path / "s.onnx").is_file()
    model_path = tmp_path / "fb.onnx"
    onnx.save(zoo.build("fbnet"), model_path)
    assert main(["db", "segment", str(model_path), "--db", str(small_db_path), "--json"]) == 0
    seg = json.loads(capsys.readouterr().out)
    assert sum(len(o["nodes"]) for o in seg["occurrences"]) == seg["nodes"]
    assert main(["db", "show", "999999", "--db", str(small_db_path)]) == 2


def test_default_db_is_reused_and_rebuilt_when_broken(tmp_path, monkeypatch, small_db_path):
    import autogo_deploy.segments.build as build_mod

    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path))
    path = default_path()
    shutil.copy(small_db_path, path)
    assert default_db(progress=False).path == path  # reused as is
    calls = []
    real_build = build_mod.build

    def small_build(p, **kw):  # the real default is the full corpus; keep the test fast
        calls.append(p)
        return real_build(p, jobs=1, **TINY)

    monkeypatch.setattr(build_mod, "build", small_build)
    path.write_bytes(b"broken")
    db = default_db(progress=False)
    assert calls == [path] and db.stats()["segments"] > 0


def test_cli_build(tmp_path, capsys):
    import json

    from autogo_deploy.cli.app import main

    out = tmp_path / "cli.db"
    args = ["db", "build", "-o", str(out), "--families", "nb201", "--limit", "8", "--vocab-size", "120"]
    assert main([*args, "--jobs", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["networks"] == {"nb201": 8}
        and doc["segments"] > 0
        and SegmentDB(out).stats()["segments"] == doc["segments"]
    )
    assert main(["db", "build", "-o", str(out), "--families", "cifar"]) == 2
    assert main(["db", "build", "-o", str(tmp_path), "--families", "nb201", "--limit", "2"]) == 2  # a folder
