"""Measurements the tool collects on its own targets, stored in SQLite (resumable), for training.

    autogo-deploy predictor collect --target ort-cpu --space nb201 -n 200

The plan for (space, seed) is a fixed, seeded sequence of networks; a run measures the first n that
the store does not hold yet for that target (or has not seen fail), so an interrupted collection
resumes where it stopped and a larger n extends it. Each row keeps the measured statistics, how they
were measured (method/env JSON), and the graph's raw node facts (zlib-compressed JSON of the node
specs and edges, independent of the feature encoding), so training never rebuilds a network and a
new featuriser still reads old rows. Failed measurements are recorded as failures, never replaced by a guess.

Spaces: nb201 (random NB201 CIFAR-10 networks), fbnet (random FBNet networks), zoo (the zoo's
reference networks and one-step AutoGO mutants of them from the segment database, via
proposers.GraphProposer), zoo-walk (mutants several steps away, like a search's later generations:
each zoo network's random walk takes its next step from its last mutant, and goes back to the
original with probability 1/4; the key records the step count).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from autogo_deploy.errors import AutogoError, DatabaseError, InputError
from autogo_deploy.predictor.features import GraphTensors

SCHEMA_VERSION = 2
SPACES = ("nb201", "fbnet", "zoo", "zoo-walk")
WALK_RESTART = 0.25  # zoo-walk: chance that a walk goes back to the original network
ZOO_PARENTS = ("resnet18", "mobilenet_v2", "vgg16_bn", "resnet50")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements(
  id INTEGER PRIMARY KEY,
  target TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL, model_sha256 TEXT NOT NULL,
  latency_ms REAL NOT NULL, mean_ms REAL, p90_ms REAL, ci95_rel REAL, runs INTEGER,
  energy_mj REAL, power_method TEXT, macs INTEGER, nodes INTEGER,
  specs BLOB NOT NULL, method TEXT, env TEXT, created TEXT NOT NULL,
  UNIQUE(target, space, key));
CREATE TABLE IF NOT EXISTS failures(
  target TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, created TEXT NOT NULL,
  UNIQUE(target, space, key));
"""


def default_path() -> Path:
    from autogo_deploy.paths import cache_dir

    return cache_dir() / "predictor" / "measurements.sqlite"


def specs_to_blob(specs, edges) -> bytes:
    from autogo_deploy.predictor.features import specs_to_json

    return zlib.compress(specs_to_json(specs, edges).encode(), 6)


def graph_from_blob(blob: bytes) -> GraphTensors:
    from autogo_deploy.predictor.features import from_specs, specs_from_json

    specs, edges = specs_from_json(zlib.decompress(blob).decode())
    return from_specs(specs, edges)


class MeasurementStore:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path))
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a measurement database: {exc}") from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
        elif row[0] == "1":  # version 1 stored feature tensors; their raw specs are rebuilt from the key
            self._migrate_v1()
        elif row[0] != str(SCHEMA_VERSION):
            raise DatabaseError(f"{self.path} has schema {row[0]}, expected {SCHEMA_VERSION}")
        self._drop_v1_tensors()

    def _migrate_v1(self) -> None:
        from autogo_deploy.predictor.arch_graphs import nb201_specs

        cols = [r[1] for r in self.db.execute("PRAGMA table_info(measurements)")]
        if "specs" not in cols:
            self.db.execute("ALTER TABLE measurements ADD COLUMN specs BLOB")
        rows = self.db.execute("SELECT id, space, key FROM measurements WHERE specs IS NULL").fetchall()
        for rid, space, key in rows:
            if space != "nb201":
                raise DatabaseError(f"{self.path}: cannot migrate schema-1 row {rid} of space {space!r}")
            self.db.execute(
                "UPDATE measurements SET specs=? WHERE id=?", (specs_to_blob(*nb201_specs(key)), rid)
            )
        self.db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
        self.db.commit()

    def _drop_v1_tensors(self) -> None:
        """Version 1's `tensors BLOB NOT NULL` column: nothing reads it, and left in place (as the first
        migration did) it made every new row fail its NOT NULL constraint."""
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(measurements)")]
        if "tensors" in cols:
            self.db.execute("ALTER TABLE measurements DROP COLUMN tensors")
            self.db.commit()

    def close(self) -> None:
        self.db.close()

    def done_keys(self, target: str, space: str) -> set[str]:
        q = "SELECT key FROM measurements WHERE target=? AND space=? UNION SELECT key FROM failures WHERE target=? AND space=?"
        return {r[0] for r in self.db.execute(q, (target, space, target, space))}

    def add(self, target: str, space: str, key: str, model_bytes: bytes, graph, m) -> None:
        """Store one measurement of `graph` (an autogo_deploy.graph.Graph of model_bytes)."""
        from autogo_deploy.predictor.features import graph_specs

        specs, edges, _ = graph_specs(graph)
        self.db.execute(
            "INSERT OR REPLACE INTO measurements(target, space, key, model_sha256, latency_ms, mean_ms, p90_ms,"
            " ci95_rel, runs, energy_mj, power_method, macs, nodes, specs, method, env, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (target, space, key, hashlib.sha256(model_bytes).hexdigest(), m.p50_ms, m.mean_ms, m.p90_ms,
             m.ci95_rel, m.runs, m.energy_mj, m.power_method, int(graph.totals()["macs"]), len(specs),
             specs_to_blob(specs, edges), json.dumps(m.method, default=str), json.dumps(m.env, default=str), _now()),
        )  # fmt: skip
        self.db.commit()

    def add_failure(self, target: str, space: str, key: str, reason: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?)", (target, space, key, reason, _now())
        )
        self.db.commit()

    def rows(
        self, target: str | None = None, space: str | None = None, max_ci95_rel: float | None = None
    ) -> list[dict]:
        """Stored measurements with their graph tensors (dicts usable by trainsets.build(own=...)).

        max_ci95_rel drops rows measured less precisely than that (rows from before the noise check)."""
        q = "SELECT id, target, space, key, latency_ms, energy_mj, power_method, macs, specs, ci95_rel FROM measurements"
        cond, args = [], []
        if target:
            cond.append("target=?")
            args.append(target)
        if space:
            cond.append("space=?")
            args.append(space)
        if max_ci95_rel is not None:
            cond.append("(ci95_rel IS NULL OR ci95_rel <= ?)")
            args.append(max_ci95_rel)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        out = []
        for r in self.db.execute(q + " ORDER BY id", args):
            out.append({"id": r[0], "target": r[1], "space": r[2], "key": r[3], "latency_ms": r[4],
                        "energy_mj": r[5], "power_method": r[6], "macs": r[7],
                        "graph": graph_from_blob(r[8]), "ci95_rel": r[9]})  # fmt: skip
        return out

    def drift_nominal(self, target: str) -> tuple[bool, float | None]:
        """(drift-corrected?, nominal reference ms) of this database's `target` measurements."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (f"drift:{target}",)).fetchone()
        if row is None:
            return False, None
        doc = json.loads(row[0])
        return bool(doc.get("on")), doc.get("nominal_ms")

    def set_drift(self, target: str, on: bool, nominal_ms: float | None = None) -> None:
        from autogo_deploy.drift import REFERENCE_NAME

        doc = {"on": on, "nominal_ms": nominal_ms, "reference": REFERENCE_NAME if on else None}
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (f"drift:{target}", json.dumps(doc)))
        self.db.commit()

    def has_rows(self, target: str) -> bool:
        q = "SELECT 1 FROM measurements WHERE target=? LIMIT 1"
        return self.db.execute(q, (target,)).fetchone() is not None

    def counts(self) -> dict[str, int]:
        q = "SELECT target || ':' || space, COUNT(*) FROM measurements GROUP BY target, space"
        return {k: v for k, v in self.db.execute(q)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def plan(space: str, seed: int = 0) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """The seeded sequence of (key, build-the-ONNX-bytes) for a space."""
    if space == "nb201":
        from autogo_deploy.zoo.nb201 import NUM_ARCHS, arch_from_ordinal, nb201

        for i in np.random.default_rng(seed).permutation(NUM_ARCHS).tolist():
            arch = arch_from_ordinal(int(i))
            yield arch, lambda a=arch: nb201(a).SerializeToString()
    elif space == "fbnet":
        from autogo_deploy.zoo.fbnet import NUM_BLOCKS, OPS, fbnet

        rng = random.Random(seed)
        while True:
            ops = " ".join(rng.choice(OPS) for _ in range(NUM_BLOCKS))
            yield ops, lambda o=ops: fbnet(o.split()).SerializeToString()
    elif space in ("zoo", "zoo-walk"):
        yield from _zoo_plan(seed, walk=space == "zoo-walk")
    else:
        raise InputError(f"unknown space {space!r}", hint=f"valid: {', '.join(SPACES)}")


def _zoo_plan(seed: int, walk: bool = False) -> Iterator[tuple[str, Callable[[], bytes]]]:
    from autogo_deploy import zoo

    if not walk:
        for name in ZOO_PARENTS:
            yield name, lambda n=name: zoo.build(n, seed=0).SerializeToString()
    from autogo_deploy.candidate import Candidate, candidate_id
    from autogo_deploy.proposers import GraphProposer
    from autogo_deploy.segments.db import default_db

    db = default_db(progress=True)
    proposer = GraphProposer(str(db.path), jobs=1)
    rng = random.Random(f"walk:{seed}" if walk else seed)  # walks do not repeat zoo's first mutants
    walkers: dict[str, tuple[Candidate, int]] = {}  # zoo-walk: each network's last mutant and its steps
    try:
        for _round in range(10_000):
            name = ZOO_PARENTS[_round % len(ZOO_PARENTS)]
            if walk and name in walkers and rng.random() >= WALK_RESTART:
                parent, steps = walkers[name]
            else:
                data = zoo.build(name, seed=0).SerializeToString()
                parent, steps = Candidate(candidate_id(data), data, None, 0), 0
            children = list(proposer(parent, rng, 2))
            for child in children:
                kind = f"walk{steps + 1}" if walk else "mutant"
                yield f"{name}:{kind}:{child.cid[:16]}", lambda b=child.model_bytes: b
            if walk and children:
                walkers[name] = (children[0], steps + 1)
    finally:
        proposer.close()


def collect(
    target: str,
    space: str,
    n: int,
    *,
    seed: int = 0,
    store: MeasurementStore | None = None,
    measure_kw: dict | None = None,
    max_ci95_rel: float = 0.05,
    retries: int = 2,
    progress: Callable[[str], None] | None = None,
    drift_correct: bool = False,
) -> dict:
    """Measure up to n not-yet-stored networks of `space` on `target`; returns counts.

    A measurement whose median's 95% CI is wider than ±max_ci95_rel is repeated up to `retries`
    times; if it stays that noisy it is recorded as a failure ("too noisy"), not stored as data.
    `drift_correct` (ort targets): every measurement also times the reference network and is stored
    rescaled to one nominal reference speed per database and target (autogo_deploy.drift), so
    measurements taken hours apart on a drifting machine share units. A database's target is either
    drift-corrected or not; mixing is refused.
    """
    from autogo_deploy.backends.npu_sim import fast_stand_in
    from autogo_deploy.graph import load
    from autogo_deploy.measure import measure
    from autogo_deploy.target import load_target

    if space not in SPACES:
        raise InputError(f"unknown space {space!r}", hint=f"valid: {', '.join(SPACES)}")
    tgt, _ = fast_stand_in(load_target(target))  # npu-sim: TVM's fusion rule on ONNX, same figures
    ok, reason = tgt.available()
    if not ok:
        from autogo_deploy.errors import BackendUnavailable

        raise BackendUnavailable(f"target {tgt.name!r} is unavailable: {reason}")
    store = store or MeasurementStore()
    drift_on, nominal = store.drift_nominal(tgt.name)
    if drift_correct and not drift_on and store.has_rows(tgt.name):
        raise InputError(
            f"{store.path} already holds {tgt.name} measurements without drift correction",
            hint="collect drift-corrected measurements into another --db",
        )
    if drift_on and not drift_correct:
        raise InputError(
            f"{store.path} holds drift-corrected {tgt.name} measurements", hint="pass --drift-correct"
        )
    if drift_correct and tgt.backend != "ort":
        raise InputError(f"--drift-correct needs an ort target, not {tgt.name} ({tgt.backend})")
    reference_dir = tempfile.TemporaryDirectory(prefix="autogo_collect_") if drift_correct else None
    if drift_correct:
        from autogo_deploy import drift

        kw = dict(measure_kw or {}, reference=drift.write_reference(Path(reference_dir.name)))

        def measure_one(data):
            nonlocal nominal
            m, used = drift.rescaled(measure(data, tgt, **kw), nominal)
            if nominal is None:
                nominal = used
                store.set_drift(tgt.name, True, nominal)
            return m
    else:

        def measure_one(data):
            return measure(data, tgt, **(measure_kw or {}))

    try:
        done = store.done_keys(tgt.name, space)
        stats = {"measured": 0, "failed": 0, "noisy": 0, "skipped_existing": 0, "seconds": 0.0}
        start = time.monotonic()
        for key, build in plan(space, seed):
            if stats["measured"] + stats["failed"] + stats["noisy"] >= n:
                break
            if key in done:
                stats["skipped_existing"] += 1
                continue
            try:
                data = build()
                g = load(data, cleanup=True)
                m = measure_one(data)
                for _ in range(retries):  # a busy machine: measure again, keep the tightest
                    if m.ci95_rel is None or m.ci95_rel <= max_ci95_rel:
                        break
                    again = measure_one(data)
                    if again.ci95_rel is not None and again.ci95_rel < m.ci95_rel:
                        m = again
                if m.ci95_rel is not None and m.ci95_rel > max_ci95_rel:
                    store.add_failure(
                        tgt.name, space, key, f"too noisy: 95% CI ±{100 * m.ci95_rel:.1f}% of the median"
                    )
                    stats["noisy"] += 1
                    continue
            except AutogoError as exc:
                store.add_failure(tgt.name, space, key, exc.one_line())
                stats["failed"] += 1
                continue
            store.add(tgt.name, space, key, data, g, m)
            stats["measured"] += 1
            if progress:
                progress(f"[{stats['measured'] + stats['failed']}/{n}] {space} {key[:60]}: {m.p50_ms:.3f} ms "
                         f"(ci95 ±{100 * (m.ci95_rel or 0):.1f}%, {m.runs} runs)")  # fmt: skip
    finally:
        if reference_dir is not None:
            reference_dir.cleanup()
    stats["seconds"] = round(time.monotonic() - start, 1)
    stats["stored"] = store.counts()
    if drift_correct:
        stats["drift_nominal_ms"] = nominal
    return stats
