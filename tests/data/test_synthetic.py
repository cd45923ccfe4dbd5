"""Planted synthetic data (jaxrec.data.synthetic)."""

import math

import numpy as np
import pytest

from jaxrec.data.synthetic import hold_out_one, low_rank
from jaxrec.errors import JaxrecError


def test_low_rank_density_is_the_gaussian_tail_of_its_threshold():
    """An entry of ``U V`` (rank 20, standard normal factors) has variance 20 and is close to
    normal, so a threshold of 5 keeps about ``P(Z > 5 / sqrt 20) = 13.2 %`` of the matrix."""
    inter = low_rank(1000, 300, rank=20, threshold=5.0, seed=0)
    tail = 0.5 * math.erfc(5 / math.sqrt(20) / math.sqrt(2))
    assert abs(len(inter) / (1000 * 300) - tail) < 0.01
    again, other = low_rank(1000, 300, seed=0), low_rank(1000, 300, seed=1)
    np.testing.assert_array_equal(np.c_[inter.users, inter.items], np.c_[again.users, again.items])
    assert len(other) != len(inter) or not np.array_equal(other.items, inter.items)


def test_low_rank_users_with_close_factors_share_items():
    """The planted structure: users' overlap (Jaccard) is far above what independent users of the
    same density would share."""
    inter = low_rank(200, 300, rank=2, threshold=1.0, seed=0)
    dense = inter.dense() > 0
    inter_ = (dense[:, None] & dense[None]).sum(-1)
    union = (dense[:, None] | dense[None]).sum(-1)
    jac = inter_[np.triu_indices(200, 1)] / np.maximum(union[np.triu_indices(200, 1)], 1)
    p = dense.mean()
    assert np.quantile(jac, 0.9) > 3 * p / (2 - p)  # independent rows: Jaccard ~ p / (2 - p)


def test_hold_out_one_keeps_everything_and_holds_one_per_user():
    inter = low_rank(50, 40, rank=3, threshold=2.0, seed=3)
    split = hold_out_one(inter, seed=0)
    counts = inter.user_counts()
    np.testing.assert_array_equal(split.test.user_counts(), (counts >= 2).astype(int))
    both = np.r_[split.train.users * 40 + split.train.items, split.test.users * 40 + split.test.items]
    np.testing.assert_array_equal(np.sort(both), np.sort(inter.users * 40 + inter.items))


def test_low_rank_refuses_empty_data():
    with pytest.raises(JaxrecError, match="no score exceeds the threshold 1000"):
        low_rank(5, 5, rank=2, threshold=1000.0)
    with pytest.raises(JaxrecError, match="positive sizes"):
        low_rank(0, 5)
