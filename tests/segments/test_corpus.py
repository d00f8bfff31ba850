"""The mining corpus: fixed order, NB101 sample validity and determinism, missing data handled."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from autogo_deploy.errors import InputError
from autogo_deploy.segments import corpus

nb101 = importlib.import_module("autogo_deploy.zoo.nb101")


def test_nb101_sample_is_valid_distinct_and_seeded():
    a = corpus.nb101_sample(300, seed=7)
    b = corpus.nb101_sample(300, seed=7)
    assert [(m.tolist(), o) for m, o in a] == [(m.tolist(), o) for m, o in b]
    keys = set()
    for m, ops in a:
        m = np.asarray(m)
        pm, pops = nb101.prune(m, ops)  # already pruned: a fixed point
        assert pm.tolist() == m.tolist() and pops == ops
        assert len(ops) <= 7 and m.sum() <= 9
        keys.add(corpus._nb101_key(m, ops))
    assert len(keys) == 300
    other = corpus.nb101_sample(300, seed=8)
    assert [(m.tolist(), o) for m, o in other] != [(m.tolist(), o) for m, o in a]


def test_full_corpus_listing():
    items = corpus.items()
    fams = {f: sum(1 for i in items if i.family == f) for f in corpus.FAMILIES}
    assert fams["nb201"] == 15625 and fams["fbnet"] == 5000 and fams["nb101"] == 5500
    assert fams["resnet"] == 3 and fams["vgg"] == fams["mobilenet_v2"] == fams["edsr"] == 1
    assert len({i.source for i in items if i.family == "nb201"}) == 15625


def test_families_are_validated():
    assert corpus.parse_families("nb201, fbnet") == ("nb201", "fbnet")
    with pytest.raises(InputError, match="unknown corpus family"):
        corpus.parse_families("nb201,imagenet")


def test_missing_benchmark_data(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGO_SHARED_DATA", str(tmp_path))
    with pytest.raises(InputError, match="not found"):
        corpus.items(["fbnet"])
    notes: list[str] = []
    items = corpus.items(["fbnet", "nb101"], require_data=False, notes=notes, nb101_samples=20)
    assert [i.family for i in items] == ["nb101"] * 20 and len(notes) == 2
