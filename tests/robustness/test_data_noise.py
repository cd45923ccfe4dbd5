"""Training data with interactions dropped or added, and victims retrained on every variant as
members of one program."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
from jaxrec.errors import JaxrecError
from jaxrec.experiment import train_members
from jaxrec.robustness import data_noise


def _pairs(inter):
    return set(zip(inter.users.tolist(), inter.items.tolist()))


def test_drop_and_add_change_the_requested_number_of_interactions(tiny_split):
    train = tiny_split.train
    d = data_noise.drop(train, 0.25, seed=1)
    assert len(d) == len(train) - round(0.25 * len(train)) and _pairs(d) <= _pairs(train)
    assert (d.n_users, d.n_items) == (train.n_users, train.n_items)
    a = data_noise.add(train, 0.2, seed=1, avoid=(tiny_split.valid, tiny_split.test))
    new = _pairs(a) - _pairs(train)
    assert len(a) == len(train) + round(0.2 * len(train)) and len(new) == round(0.2 * len(train))
    assert not new & (_pairs(tiny_split.valid) | _pairs(tiny_split.test))  # noise never hands out test items
    assert _pairs(data_noise.drop(train, 0.25, seed=1)) == _pairs(d)  # seeded
    assert _pairs(data_noise.drop(train, 0.25, seed=2)) != _pairs(d)
    assert len(data_noise.drop(train, 0.0, seed=0)) == len(train)
    for bad in (-0.1, 1.0):
        with pytest.raises(JaxrecError, match=r"rate must be in \[0, 1\)"):
            data_noise.drop(train, bad, 0)
    with pytest.raises(JaxrecError, match="unknown data perturbation"):
        data_noise.perturb_data(train, "swap", 0.1, 0)


def test_data_variant_members_equal_separate_runs_on_the_same_data(tiny_split):
    """LightGCN: padded pairs, positive sets and graph edges, per-member graphs in training and
    in the test evaluation (MF's padded variants: tests/train/test_members.py; mapped members on
    their own data: tests/train/test_rowwise.py)."""
    cfg = Config(
        model=ModelConfig(name="lightgcn", dim=8, layers=1),
        eval=EvalConfig(ks=(5,)),
        train=TrainConfig(epochs=3, batch_size=16, lr=0.05, l2=1e-3),
    )
    variants = [data_noise.drop(tiny_split.train, 0.2, 0), data_noise.add(tiny_split.train, 0.1, 1), tiny_split.train]
    cfgs = [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s)) for s in range(3)]
    together = train_members(cfgs, tiny_split, progress=False, trains=variants)
    assert together.training.data_batched and together.timing["traces"]["epoch"] == 1
    for m, v in enumerate(variants):
        alone = train_members([cfgs[m]], tiny_split, progress=False, trains=[v])  # unpadded, unbatched
        for k, x in alone.metrics[0].items():
            np.testing.assert_allclose(together.metrics[m][k], x, rtol=1e-5, atol=1e-6)
        got = together.fit.member(m).state.params["params"]["embeddings"]["item"]
        want = alone.fit.member(0).state.params["params"]["embeddings"]["item"]
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert together.metrics[0] != together.metrics[2]
    # the ranking is the clean split's: a victim trained on the clean data is the plain run
    plain = train_members([cfgs[2]], tiny_split, progress=False)
    np.testing.assert_allclose(together.metrics[2]["ndcg@5"], plain.metrics[0]["ndcg@5"], rtol=1e-5)


def test_worst_users_are_read_at_the_largest_strength_wherever_it_is_listed(tiny_split):
    from jaxrec.experiment.studies.robustness import _worst
    from jaxrec.robustness.strengths import PerturbedMetrics

    users = np.array([0, 1, 2])
    clean = np.array([0.9, 0.8, 0.7])
    per = np.array([[[0.9, 0.1, 0.7], [0.2, 0.8, 0.7]]])  # [seed, strength, user]; eps listed 1.0, 0.5
    res = PerturbedMetrics(rows=[], clean={}, users=users, clean_ndcg=clean, user_ndcg=per)
    worst = _worst("v", "fgm", [1.0, 0.5], [res], tiny_split, 10, 1)
    assert worst[0]["eps"] == 1.0 and worst[0]["user"] == tiny_split.train.user_ids[1]
    assert worst[0]["drop"] == pytest.approx(0.7)
