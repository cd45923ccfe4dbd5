"""Planted synthetic data (jaxrec.data.synthetic)."""

import math

import numpy as np
import pytest

from jaxrec.data import load_dataset, read_table
from jaxrec.data.synthetic import from_spec, hold_out_one, low_rank, power_law
from jaxrec.data.tables import write_table
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


def _cluster_energy(inter, k: int) -> float:
    """Share of the binary matrix's squared Frobenius norm in its singular values 2..k (the
    first is the popularity direction every such matrix has)."""
    sv = np.linalg.svd(inter.dense() > 0, compute_uv=False)
    return float(np.sum(sv[1:k] ** 2) / np.sum(sv**2))


def test_power_law_hits_its_size_follows_power_laws_and_plants_clusters():
    inter = power_law(600, 400, 12_000, clusters=4, noise=0.1, seed=3)
    assert 0.98 * 12_000 <= len(inter) <= 12_000  # duplicates are redrawn (5 % dense: heavy users run short)
    pairs = np.c_[inter.users, inter.items]
    assert len(np.unique(pairs, axis=0)) == len(inter)
    again = power_law(600, 400, 12_000, clusters=4, noise=0.1, seed=3)
    np.testing.assert_array_equal(pairs, np.c_[again.users, again.items])
    assert not np.array_equal(
        pairs,
        np.c_[
            power_law(600, 400, 12_000, clusters=4, noise=0.1, seed=4).users,
            power_law(600, 400, 12_000, clusters=4, noise=0.1, seed=4).items,
        ],
    )
    users, items = np.sort(inter.user_counts())[::-1], np.sort(inter.item_counts())[::-1]
    assert users.min() >= 1 and users[:6].sum() > 4 * users[-6:].sum()  # heavy head, light tail
    assert items[:40].sum() > 0.2 * len(inter)  # the top 10 % of items hold > 20 % of the pairs
    # the planted rank-4 block structure: beyond the popularity direction, singular values 2-4
    # hold ~4x more of the matrix than without clusters (every pair from global popularity)
    null = power_law(600, 400, 12_000, clusters=4, noise=1.0, seed=3)
    assert _cluster_energy(inter, 4) > 3 * _cluster_energy(null, 4)


def test_synthetic_spec_and_file_round_trip(tmp_path):
    spec = "synthetic:users=300,items=200,pairs=3000,seed=1"
    inter = load_dataset(spec)
    ref = power_law(300, 200, 3000, seed=1)
    np.testing.assert_array_equal(np.c_[inter.users, inter.items], np.c_[ref.users, ref.items])
    for name in ("s.csv", "s.tsv", "s.parquet"):
        back = read_table(write_table(inter, tmp_path / name))
        assert len(back) == len(inter)
        np.testing.assert_array_equal(np.c_[back.users, back.items], np.c_[inter.users, inter.items])


@pytest.mark.parametrize(
    "spec, says",
    [
        ("synthetic:users=10,bogus=3", "'bogus=3' is not key=value with a key among"),
        ("synthetic:users=ten", "users='ten' is not a int"),
        ("synthetic:users=100,pairs=50", "50 pairs for 100 users"),
        ("synthetic:users=5,items=5,pairs=30", "30 pairs do not fit in 5 x 5"),
        ("synthetic:noise=2", "noise must be in"),
    ],
)
def test_synthetic_spec_mistakes_are_one_clear_error(spec, says):
    with pytest.raises(JaxrecError, match=says):
        from_spec(spec)
