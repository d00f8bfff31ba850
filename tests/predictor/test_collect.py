"""Own-measurement store: resumable collection, noisy results refused, rows usable for training."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

import pytest

from autogo_deploy.errors import DatabaseError, InputError
from autogo_deploy.predictor import collect as C


@dataclass
class FakeMeasurement:
    p50_ms: float
    ci95_rel: float
    mean_ms: float = 1.0
    p90_ms: float = 1.1
    runs: int = 30
    energy_mj: float | None = 2.0
    power_method: str = "modeled"
    method: dict = field(default_factory=lambda: {"fake": True})
    env: dict = field(default_factory=dict)


@pytest.fixture
def fake_measure(monkeypatch):
    calls = []

    def measure(data, tgt, **kw):
        calls.append(len(data))
        # every 3rd network is noisy on every try → must be refused, never stored
        noisy = len(calls) % 3 == 0
        return FakeMeasurement(p50_ms=1.0 + len(calls) / 100, ci95_rel=0.5 if noisy else 0.01)

    import autogo_deploy.measure

    monkeypatch.setattr(autogo_deploy.measure, "measure", measure)
    return calls


def test_collect_resumes_and_refuses_noise(tmp_path, fake_measure):
    store = C.MeasurementStore(tmp_path / "m.sqlite")
    first = C.collect("ort-cpu", "nb201", 2, store=store, retries=0)
    assert first["measured"] + first["noisy"] == 2
    second = C.collect("ort-cpu", "nb201", 3, store=store, retries=0)
    assert second["skipped_existing"] == 2  # the first two were not measured again
    rows = store.rows(target="ort-cpu")
    assert len(rows) == first["measured"] + second["measured"]
    failures = store.db.execute("SELECT reason FROM failures").fetchall()
    assert failures and all("too noisy" in r[0] for r in failures)
    for r in rows:
        assert r["graph"].num_nodes > 10 and r["latency_ms"] > 0 and r["space"] == "nb201"
    store.close()


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "x.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES('schema', '99')")
    db.commit()
    db.close()
    with pytest.raises(DatabaseError):
        C.MeasurementStore(path)


def test_drift_corrected_collection_shares_one_nominal_and_refuses_mixing(tmp_path):
    """Real ORT measurements of two NB201 nets, each timed beside the reference network."""
    store = C.MeasurementStore(tmp_path / "d.sqlite")
    kw = {"min_runs": 10, "max_runs": 20, "time_cap_s": 2.0, "warmup": 2}
    stats = C.collect("ort-cpu", "nb201", 2, store=store, measure_kw=kw, max_ci95_rel=1e9, drift_correct=True)
    assert stats["measured"] == 2 and stats["drift_nominal_ms"] > 0, (
        stats,
        store.db.execute("SELECT * FROM failures").fetchall(),
    )
    on, nominal = store.drift_nominal("ort-cpu")
    assert on and nominal == stats["drift_nominal_ms"]
    methods = [json.loads(r[0]) for r in store.db.execute("SELECT method FROM measurements ORDER BY id")]
    first, second = (m["drift_correction"] for m in methods)
    assert first["nominal_ms"] == second["nominal_ms"] == nominal  # set by the very first measurement
    for d in (first, second):
        assert d["factor"] == pytest.approx(nominal / d["reference_median_ms"]) and d["factor"] > 0
    assert "reference" not in methods[0]  # the reference's raw times are not stored as the net's
    with pytest.raises(InputError, match="holds drift-corrected ort-cpu measurements"):
        C.collect("ort-cpu", "nb201", 1, store=store, measure_kw=kw)
    store.close()
    plain = C.MeasurementStore(tmp_path / "p.sqlite")
    C.collect("ort-cpu", "nb201", 1, store=plain, measure_kw=kw, max_ci95_rel=1e9)
    with pytest.raises(InputError, match="without drift correction"):
        C.collect("ort-cpu", "nb201", 1, store=plain, measure_kw=kw, drift_correct=True)
    plain.close()


def test_schema_1_database_is_migrated_and_takes_new_rows(tmp_path, fake_measure):
    """A version-1 store (feature tensors, no specs) is migrated: specs rebuilt, and new rows insert."""
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema', '1');"
        "CREATE TABLE measurements(id INTEGER PRIMARY KEY, target TEXT NOT NULL, space TEXT NOT NULL,"
        " key TEXT NOT NULL, model_sha256 TEXT NOT NULL, latency_ms REAL NOT NULL, mean_ms REAL, p90_ms REAL,"
        " ci95_rel REAL, runs INTEGER, energy_mj REAL, power_method TEXT, macs INTEGER, nodes INTEGER,"
        " tensors BLOB NOT NULL, method TEXT, env TEXT, created TEXT NOT NULL, UNIQUE(target, space, key));"
    )
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    db.execute(
        "INSERT INTO measurements(target, space, key, model_sha256, latency_ms, tensors, created)"
        " VALUES ('ort-cpu', 'nb201', ?, 'x', 0.5, x'00', 'then')",
        (arch,),
    )
    db.commit()
    db.close()
    store = C.MeasurementStore(path)
    assert [r["key"] for r in store.rows()] == [arch]
    assert store.rows()[0]["graph"].num_nodes > 10
    stats = C.collect("ort-cpu", "nb201", 2, store=store, retries=0)
    assert stats["measured"] >= 1 and len(store.rows()) == 1 + stats["measured"]
    store.close()
    C.MeasurementStore(path).close()  # reopening the migrated store is a no-op


def test_zoo_walk_plan_steps_away_from_the_original(small_db_path, monkeypatch):
    """zoo-walk keys count the steps from the zoo network; the walks are seeded and do not repeat the
    one-step mutants of the zoo space."""
    import itertools

    from autogo_deploy import zoo
    from autogo_deploy.segments import db as segdb

    build = zoo.build
    monkeypatch.setattr(C, "ZOO_PARENTS", ("resnet18",))
    monkeypatch.setattr(zoo, "build", lambda name, seed=0: build(name, seed=seed, input_size=64))
    monkeypatch.setattr(segdb, "default_db", lambda progress=True: segdb.SegmentDB(small_db_path))
    monkeypatch.setattr(C, "WALK_RESTART", 0.0)  # never back to the original: steps 1, 2, 3

    walk = [k for k, _ in itertools.islice(C.plan("zoo-walk", 0), 6)]
    assert walk == [k for k, _ in itertools.islice(C.plan("zoo-walk", 0), 6)]
    steps = [int(k.split(":")[1].removeprefix("walk")) for k in walk]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] >= 2, walk
    assert all(k.startswith("resnet18:walk") for k in walk) and len(set(walk)) == len(walk)
    one_step = {k.rsplit(":", 1)[1] for k, _ in itertools.islice(C.plan("zoo", 0), 5) if ":mutant:" in k}
    assert one_step
    assert not one_step & {k.rsplit(":", 1)[1] for k in walk if ":walk1:" in k}


def test_npu_sim_is_collected_with_the_fast_fusion_stand_in(tmp_path, monkeypatch):
    """npu-sim's TVM importer costs 10-70 s a model; collection uses the same fusion rule on ONNX
    (backends.npu_sim.fast_stand_in), under the target's own name."""
    seen = []

    def measure(data, tgt, **kw):
        seen.append((tgt.name, tgt.options.get("fusion")))
        return FakeMeasurement(p50_ms=1.0, ci95_rel=0.0)

    import autogo_deploy.measure

    monkeypatch.setattr(autogo_deploy.measure, "measure", measure)
    store = C.MeasurementStore(tmp_path / "m.sqlite")
    C.collect("npu-sim", "nb201", 2, store=store, retries=0)
    assert seen == [("npu-sim", "onnx-rules")] * 2 and len(store.rows(target="npu-sim")) == 2
    store.close()
