"""genprior.io.splits: the shipped models' training and held-out files never overlap; picks are spread and seeded."""

from __future__ import annotations

import pytest

from genprior.io.splits import SPLITS, split_files


@pytest.mark.parametrize("model", sorted(SPLITS))
def test_training_and_held_out_files_are_disjoint(shared, model):
    train = split_files(shared, model, "train", 10**6)
    held_out = split_files(shared, model, "held_out", 10**6)
    assert train and held_out and not set(train) & set(held_out)
    assert all(f.is_file() for f in train[:3] + held_out[:3])


def test_picks_are_spread_and_offsets_disjoint(shared):
    a = split_files(shared, "genprior-faces64", "held_out", 24)
    b = split_files(shared, "genprior-faces64", "held_out", 24, offset=1)
    assert len(a) == len(b) == 24 and not set(a) & set(b)
    names = sorted(f.name for f in split_files(shared, "genprior-faces64", "held_out", 10**6))
    assert a[0].name == names[0] and a[1].name == names[1000 // 24]  # every 41st of the 1,000 held-out files
    with pytest.raises(KeyError, match="no data split known for 'genprior-digits32'"):
        split_files(shared, "genprior-digits32", "train", 3)
