"""The packaged reference set is HELP's, as the shared benchmark files resolve it."""

from __future__ import annotations

import pytest

from autogo_deploy.errors import InputError
from autogo_deploy.predictor import datasets as ds


@pytest.mark.parametrize("space", ["nb201", "fbnet"])
def test_packaged_reference_archs_match_the_shared_data(space):
    try:
        shared = ds.shared_reference_archs(space)
    except (InputError, OSError) as exc:
        pytest.skip(f"shared benchmark data not here: {exc}")
    packaged = ds.reference_archs(space)
    assert len(packaged) == 10 and packaged == shared


def test_unknown_space_is_refused():
    with pytest.raises(InputError, match="no reference set"):
        ds.reference_archs("nb999")
