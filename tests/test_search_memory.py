"""What a search keeps: model bytes (released off the front, a bounded sample for random search, the
checkpoint's files) and the width leash, in the synthetic world of test_search."""

from __future__ import annotations

import json

from test_search import _value, make, proposer

from autogo_deploy.candidate import candidate_id
from autogo_deploy.search import Search


def test_measured_candidates_off_the_front_release_their_bytes(tmp_path):
    s, measured = make(generations=10, checkpoint=tmp_path / "ck")
    r = s.run()
    front = {c.cid for c in s.front()} | {s.baseline.cid}
    held = [c for c in s.pool.values() if c.measured and c.has_model and c.cid not in front]
    assert len(measured) > Search.KEEP_MEASURED + len(front)  # enough measured to release some
    assert len(held) <= Search.KEEP_MEASURED
    assert r.best is not None and r.best.model_bytes  # the emitted model keeps its bytes
    # the checkpoint holds the files of the kept candidates only, and the record of every measured one
    files = {p.stem for p in (tmp_path / "ck").glob("*.onnx")}
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert {d["cid"] for d in state["candidates"]} >= {c.cid for c in s.pool.values() if c.measured}
    assert files == {d["cid"] for d in state["candidates"] if d["model"]}
    assert len(files) < len(state["candidates"])  # released ones left no file behind
    for cid in files:
        assert candidate_id((tmp_path / "ck" / f"{cid}.onnx").read_bytes()) == cid


def test_random_search_keeps_a_bounded_uniform_sample_of_measured_parents(monkeypatch):
    """Random search draws parents from the measured candidates it keeps: at most RANDOM_POOL_BYTES
    of them at the input's size (it had kept all: 20 GB by generation 101 on ResNet-50), chosen by a
    seeded hash, so the sample is the same however the run is cut, and a released one never returns."""
    monkeypatch.setattr(Search, "RANDOM_POOL_BYTES", 6 * len(b"100"))  # 6 models of the input's size
    s, measured = make(generations=12, cfg={"strategy": "random"})
    held_per_gen = []
    release = s._release_memory

    def watch():  # what is held beyond the front and the input, after each generation's release
        release()
        front = {c.cid for c in s.front()} | {s.baseline.cid}
        held_per_gen.append({c.cid for c in s.pool.values() if c.measured and c.has_model} - front)

    s._release_memory = watch
    s.run()
    assert len(measured) > 6 + 8  # enough measured for the cap to bite
    assert max(len(held) for held in held_per_gen) == 6
    every = [c for c in s.pool.values() if c.measured]
    in_sample = s._random_sample(every)
    assert held_per_gen[-1] <= in_sample  # the sample of everything measured, not of the last few
    gone: set[str] = set()
    for before, after in zip(held_per_gen, held_per_gen[1:], strict=False):
        gone |= before - after
        assert not (after & gone)  # left the sample: never comes back


def test_width_drop_budget_keeps_the_main_path_wide():
    """A mutant whose main path narrowed more than width_drop allows is never measured or emitted
    (here a candidate's main-path width is its value; the input's is 100)."""

    def narrowing(parent, rng, n):
        kids = proposer(parent, rng, n)
        for c in kids:
            c.widths = {"8x8": _value(c)}
        return kids

    s, measured = make(budgets=("acc_drop=0", "width_drop=0.3"), generations=8, propose=narrowing)
    s.baseline.widths = {"8x8": 100}
    r = s.run()
    narrow = [c for c in s.pool.values() if c.width_drop is not None and c.width_drop > 0.3]
    assert narrow  # the proposer made some
    assert all(not c.measured for c in narrow) and min(measured) >= 70
    assert r.best is not None and r.best.width_drop <= 0.3 and _value(r.best) >= 70
