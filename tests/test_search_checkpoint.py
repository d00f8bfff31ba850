"""A search's checkpoint folder: written every generation, read back, and refused when it is not one."""

from __future__ import annotations

import json

import pytest
from test_search import _cand, make

from autogo_deploy import search_checkpoint
from autogo_deploy.errors import InputError


def test_checkpoint_keeps_state_and_the_stall_count(tmp_path):
    s, _ = make(generations=12, checkpoint=tmp_path / "ck", cfg={"escape_after": 3})
    s.run()
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert state["generation"] == 12 and len(state["history"]) == 12
    for doc in state["candidates"]:
        assert "verified" not in doc and (tmp_path / "ck" / f"{doc['cid']}.onnx").is_file() == doc["model"]
    again, _ = make(generations=14, checkpoint=tmp_path / "ck", cfg={"escape_after": 3})
    again.load_checkpoint(tmp_path / "ck")
    assert again.start_generation == 12
    assert again._stalled == state["history"][-1]["stalled"]
    assert all(not c.verified for c in again.pool.values() if c is not again.baseline)
    assert {c.cid for c in again.pool.values() if c.has_model} == {
        d["cid"] for d in state["candidates"] if d["model"]
    }
    restored = {c.cid: c.measured for c in again.pool.values() if c.measured and c is not again.baseline}
    recorded = {d["cid"]: d["measured"] for d in state["candidates"] if d["measured"]}
    recorded.pop(s.baseline.cid)
    assert restored == recorded  # released candidates come back as records (figures kept, no model)


def test_a_resumed_run_matches_the_uninterrupted_one(tmp_path):
    """Released candidates are records in the checkpoint; the resumed search goes on as if never cut."""
    whole, whole_measured = make(generations=8, seed=3)
    whole.run()
    first, _ = make(generations=4, seed=3, checkpoint=tmp_path / "ck")
    first.run()
    rest, rest_measured = make(generations=8, seed=3, checkpoint=tmp_path / "ck")
    rest.load_checkpoint(tmp_path / "ck")
    rest.run()
    assert [h["best_cost"] for h in rest.history] == [h["best_cost"] for h in whole.history]
    assert rest_measured[1:] == whole_measured[-len(rest_measured) + 1 :]  # same measurements after the input


def test_a_checkpoint_folder_keeps_files_it_did_not_write(tmp_path):
    (tmp_path / "ck").mkdir()
    mine = tmp_path / "ck" / "my_model.onnx"
    mine.write_bytes(b"user file")
    s, _ = make(generations=6, checkpoint=tmp_path / "ck")
    s.run()
    assert mine.read_bytes() == b"user file"


def test_modeled_gaps_survive_a_resume(tmp_path):
    """The report's proposer.modeled_vs_measured covers the whole run, not only the resumed part."""
    s, _ = make(generations=2, checkpoint=tmp_path / "ck")
    s.run()
    s.modeled_gaps = [0.0, 0.012]
    search_checkpoint.write(s, 2)
    again, _ = make(generations=4, checkpoint=tmp_path / "ck")
    again.load_checkpoint(tmp_path / "ck")
    assert again.modeled_gaps == [0.0, 0.012]


def test_what_is_not_a_checkpoint_is_refused(tmp_path):
    s, _ = make()
    with pytest.raises(InputError, match="state.json missing"):
        s.load_checkpoint(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(InputError, match="is unreadable"):
        s.load_checkpoint(tmp_path)
    (tmp_path / "state.json").write_text(
        json.dumps({"version": 1, "baseline": _cand(7).cid, "candidates": []})
    )
    with pytest.raises(InputError, match="belongs to another input model"):
        s.load_checkpoint(tmp_path)
    (tmp_path / "state.json").write_text(
        json.dumps(
            {"version": 1, "baseline": s.baseline.cid, "generation": 1, "candidates": [{"cid": "gone"}]}
        )
    )
    with pytest.raises(InputError, match="is unreadable"):  # a model file missing
        s.load_checkpoint(tmp_path)
