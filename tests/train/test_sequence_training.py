"""Sequence models on the engine: the losses by hand, length buckets against the padded
reference, members against separate runs, and both evaluation protocols against brute force."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import timed_events_csv

from jaxrec.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig
from jaxrec.evaluate import sampled_candidates
from jaxrec.experiment.data import load_split
from jaxrec.experiment.training import train_members
from jaxrec.models import SASRec
from jaxrec.train.sequence import gbce_beta, make_sequence_loss_fn, position_losses
from jaxrec.train.state import init_params


@pytest.fixture(scope="module")
def seq_csv(tmp_path_factory):
    """40 users with 4-12 timed events over 30 items (repeats allowed)."""
    return timed_events_csv(tmp_path_factory.mktemp("seq"), 40, 30, (4, 13), seed=0)


def _cfg(path, **train) -> Config:
    return Config(
        data=DataConfig(dataset=str(path), time_col="timestamp", split="leave_one_out"),
        model=ModelConfig(name="sasrec", dim=8, layers=1, heads=2, max_len=8, dropout=0.0),
        train=TrainConfig(**{"epochs": 2, "batch_size": 8, "loss": "bce", "buckets": (4,), **train}),
        eval=EvalConfig(ks=(5, 10)),
    )


def test_gbce_by_hand():
    k, n = 4, 101
    alpha = k / (n - 1)
    assert gbce_beta(k, n, 0.0) == pytest.approx(1.0)
    assert gbce_beta(k, n, 1.0) == pytest.approx(alpha)
    assert gbce_beta(k, n, 0.75) == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    pos, neg = jnp.asarray([[0.3, -1.2]]), jnp.asarray([[[0.1, 2.0, -0.5, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    bce = position_losses("bce", pos, neg)
    np.testing.assert_allclose(position_losses("gbce", pos, neg, 1.0), bce / (1 + k), rtol=1e-6)
    by_hand = -0.4 * np.log(1 / (1 + np.exp(-0.3))) - np.sum(np.log(1 - 1 / (1 + np.exp(-np.asarray(neg[0, 0])))))
    np.testing.assert_allclose(position_losses("gbce", pos, neg, 0.4)[0, 0], by_hand / (1 + k), rtol=1e-5)


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_buckets_equal_the_padded_reference(loss):
    m = SASRec(n_users=4, n_items=20, dim=8, layers=1, heads=2, max_len=8, dropout=0.0)
    params = init_params(m, jax.random.key(0))
    P = 20
    history = jnp.asarray([[P, P, P, P, P, 1, 2, 3], [P, P, P, P, 4, 5, 6, 7], [P] * 8], jnp.int32)
    targets = jnp.asarray([[P, P, P, P, P, 2, 3, 9], [P, P, P, P, 5, 6, 7, 8], [P] * 8], jnp.int32)
    neg = jax.random.randint(jax.random.key(1), (3, 8, 2), 0, 20)
    items = jnp.concatenate([targets[..., None], neg], -1) if loss == "bce" else targets[..., None]
    mask = jnp.asarray([1.0, 1.0, 0.0])
    args = (params, {}, history, items, mask, jax.random.key(2), {})
    ref = make_sequence_loss_fn(m, loss, (8,))
    fast = make_sequence_loss_fn(m, loss, (4, 8))  # the batch's longest window (4) runs at width 4
    # compiled, as training runs them (op by op, the many small programs took longer)
    (v_ref, _), g_ref = jax.jit(jax.value_and_grad(ref, has_aux=True))(*args)
    (v_fast, _), g_fast = jax.jit(jax.value_and_grad(fast, has_aux=True))(*args)
    np.testing.assert_allclose(v_fast, v_ref, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_fast, g_ref)


def test_members_equal_separate_runs(seq_csv):
    cfg = _cfg(seq_csv, epochs=1)
    split = load_split(cfg.data, sequential=True)
    cfgs = [
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s, lr=lr))
        for s, lr in ((0, 1e-3), (1, 3e-3))
    ]
    together = train_members(cfgs, split, progress=False)
    for m, c in enumerate(cfgs):
        alone = train_members([c], split, progress=False)
        for k, v in alone.metrics[0].items():
            assert together.metrics[m][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
        a = jax.tree.leaves(alone.fit.best)
        b = [x[m : m + 1] for x in jax.tree.leaves(together.fit.best)]
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _brute_metrics(model, params, queries, targets, candidates=None, exclude=None, k=10):
    scores = np.asarray(model.apply(params, jnp.asarray(queries), method="score_all"))
    hits, ndcgs = [], []
    for u in range(len(targets)):
        s = scores[u].copy()
        if candidates is not None:
            c = candidates[u]
            rank = int(np.sum(s[c[1:]] > s[c[0]]))
        else:
            if exclude is not None:
                s[list(exclude[u])] = -np.inf
            rank = int(np.sum(s > s[targets[u]]))
        hits.append(rank < k)
        ndcgs.append(1 / np.log2(rank + 2) if rank < k else 0.0)
    return np.mean(hits), np.mean(ndcgs)


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_evaluation_protocols_against_brute_force(seq_csv, protocol):
    cfg = _cfg(seq_csv, epochs=1)
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, protocol=protocol, negatives=20, ks=(10,)))
    split = load_split(cfg.data, sequential=True)
    out = train_members([cfg], split, progress=False)
    model, params = out.training.model, jax.tree.map(lambda x: x[0], out.fit.best)
    from jaxrec.data.sequences import histories

    users = np.flatnonzero(split.test.user_counts() > 0)
    queries = histories([split.train, split.valid], "time", 8)[users]
    test_item = {int(u): int(i) for u, i in zip(split.test.users, split.test.items)}
    targets = [test_item[u] for u in users]
    cands = sampled_candidates(split.train, split.test, 20, seed=0)[users] if protocol == "sampled" else None
    hr, ndcg = _brute_metrics(model, params, queries, targets, cands)  # full: no history masking (RecBole)
    assert out.metrics[0]["hit@10"] == pytest.approx(hr, abs=1e-6)
    assert out.metrics[0]["ndcg@10"] == pytest.approx(ndcg, abs=1e-5)


def test_sampled_negatives_never_in_the_training_history(seq_csv):
    split = load_split(_cfg(seq_csv).data, sequential=True)
    cand = sampled_candidates(split.train, split.test, 100, seed=3)
    seen = {(int(u), int(i)) for u, i in zip(split.train.users, split.train.items)}
    for u, i in zip(split.test.users, split.test.items):
        assert cand[u, 0] == i
        assert not any((int(u), int(c)) in seen for c in cand[u, 1:])
    assert np.array_equal(cand, sampled_candidates(split.train, split.test, 100, seed=3))  # seeded


def test_checkpoint_resume_is_exact(seq_csv, tmp_path):
    from jaxrec.config import CheckpointConfig
    from jaxrec.experiment import run

    def cfg(epochs, every):
        c = _cfg(seq_csv, epochs=epochs)
        ck = CheckpointConfig(every=every, dir=str(tmp_path / "ck")) if every else CheckpointConfig()
        return dataclasses.replace(c, name="ck", output_dir=str(tmp_path), checkpoint=ck)

    split = load_split(cfg(1, 0).data, sequential=True)
    full = run(cfg(3, 0), progress=False, write=False, split=split)
    run(cfg(2, 1), progress=False, write=False, split=split)  # "interrupted" after epoch 2
    resumed = run(cfg(3, 1), progress=False, write=False, split=split, resume=True)
    assert [h["epoch"] for h in resumed.fit.history] == [3]
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(full.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.metrics == full.metrics
