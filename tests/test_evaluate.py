"""Full-ranking metrics against a hand-written numpy reference (docs/protocols.md definitions)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import reference_metrics

from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import evaluate, metrics_from_hits, rank_users, ranking_data, split_ranking


class FixedScores(nn.Module):
    """A 'model' whose scores are its one parameter, a ``[n_users, n_items]`` matrix."""

    n_users: int
    n_items: int

    def setup(self):
        self.scores = self.param("scores", nn.initializers.zeros, (self.n_users, self.n_items))

    def embeddings(self):
        return self.scores

    def score_all(self, users, cache=None):
        return (self.embeddings() if cache is None else cache)[users]


def fixed(scores):
    """``(model, variables)`` scoring with the matrix ``scores``."""
    return FixedScores(*scores.shape), {"params": {"scores": jnp.asarray(scores)}}


def random_case(seed, n_users=23, n_items=31):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    tr_u, tr_i, te_u, te_i = [], [], [], []
    train_sets, test_sets = [], []
    for u in range(n_users):
        items = rng.permutation(n_items)
        n_tr, n_te = rng.integers(0, 10), rng.integers(0, 6) if u % 5 else 0  # some users: no test
        train_sets.append(set(items[:n_tr].tolist()))
        test_sets.append(set(items[n_tr : n_tr + n_te].tolist()))
        tr_u += [u] * n_tr
        tr_i += items[:n_tr].tolist()
        te_u += [u] * n_te
        te_i += items[n_tr : n_tr + n_te].tolist()
    train = Interactions(np.array(tr_u, int), np.array(tr_i, int), n_users, n_items)
    test = Interactions(np.array(te_u, int), np.array(te_i, int), n_users, n_items)
    return scores, train, test, train_sets, test_sets


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_metrics_match_reference(seed, chunk):
    scores, train, test, train_sets, test_sets = random_case(seed)
    ks = (1, 3, 10, 31)
    data = ranking_data(test, [train], chunk=chunk)
    got = evaluate(*fixed(scores), data, ks)
    want = reference_metrics(scores, train_sets, test_sets, ks)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert data.n_users == sum(1 for t in test_sets if t)


def test_validation_items_are_masked_when_scoring_test():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)  # ranks items 0,1,2,3,4
    one = lambda i: Interactions(np.array([0]), np.array([i]), 1, 5)  # noqa: E731
    split = Split(train=one(0), valid=one(1), test=one(2))
    got = evaluate(*fixed(scores), split_ranking(split, "test"), (1,))
    assert got["hit@1"] == 1.0 and got["mrr@1"] == 1.0  # items 0 and 1 masked -> 2 ranks first


def test_metrics_from_hits_hand_example():
    # one user, |T| = 2, hits at ranks 2 and 3 of 3
    hits = jnp.array([[0.0, 1.0, 1.0]])
    m = metrics_from_hits(hits, jnp.array([2]), (1, 3))
    assert float(m["hit@1"][0]) == 0.0 and float(m["hit@3"][0]) == 1.0
    np.testing.assert_allclose(float(m["recall@3"][0]), 1.0)
    np.testing.assert_allclose(float(m["precision@3"][0]), 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(m["mrr@3"][0]), 0.5)
    dcg, idcg = 1 / np.log2(3) + 1 / np.log2(4), 1 + 1 / np.log2(3)
    np.testing.assert_allclose(float(m["ndcg@3"][0]), dcg / idcg, rtol=1e-6)


def test_k_larger_than_catalogue_is_a_clear_error():
    scores, train, test, *_ = random_case(0)
    with pytest.raises(JaxrecError, match="K=32 must be between 1 and the number of items"):
        evaluate(*fixed(scores), ranking_data(test, [train]), (10, 32))


def test_no_user_with_test_items_is_a_clear_error():
    empty = Interactions(np.zeros(0, int), np.zeros(0, int), 3, 4, source="empty.csv")
    with pytest.raises(JaxrecError, match="empty.csv: no user has a held-out item"):
        ranking_data(empty)


def test_rax_agrees_on_ndcg_and_recall():
    """Cross-check with Google's rax where its definitions coincide (no masking, K = all)."""
    rax = pytest.importorskip("rax")
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(8, 12)).astype(np.float32)
    labels = (rng.random((8, 12)) < 0.3).astype(np.float32)
    labels[:, 0] = 1.0
    users, items = np.nonzero(labels)
    test = Interactions(users, items, 8, 12)
    got = evaluate(*fixed(scores), ranking_data(test), (5,))
    want = rax.ndcg_metric(jnp.asarray(scores), jnp.asarray(labels), topn=5, gain_fn=lambda x: x, reduce_fn=None)
    np.testing.assert_allclose(got["ndcg@5"], float(jnp.mean(want)), rtol=1e-5)


def test_rank_stability_against_a_reference_ranking_hand_example():
    """Two users, 5 items, no masked item. Reference top-2: user 0 {4, 3}, user 1 {0, 1}; the
    other ranking: user 0 {4, 2} (overlap 1: Jaccard 1/3), user 1 {0, 1} (Jaccard 1). The score
    shift is the mean change of the reference's top-2 scores."""
    ref_scores = jnp.asarray([[0.0, 0.1, 0.2, 0.8, 0.9], [0.9, 0.8, 0.1, 0.0, 0.2]])
    new_scores = jnp.asarray([[0.0, 0.1, 0.7, 0.5, 1.0], [1.0, 0.9, 0.1, 0.0, 0.2]])
    targets = Interactions(np.array([0, 1]), np.array([2, 1]), 2, 5)
    data = ranking_data(targets, chunk=1)
    ref = rank_users(lambda u: ref_scores[u], data, (2,))
    got = rank_users(lambda u: new_scores[u], data, (2,), ref)
    np.testing.assert_allclose(np.asarray(got.metrics["jaccard@2"]).ravel(), [1 / 3, 1.0], rtol=1e-6)
    # user 0: items 4 and 3 move by +0.1 and -0.3; user 1: items 0 and 1 by +0.1 each
    np.testing.assert_allclose(np.asarray(got.metrics["score_shift@2"]).ravel(), [-0.1, 0.1], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(got.top).reshape(2, 2), [[4, 2], [0, 1]])
    assert "jaccard@2" not in ref.metrics


def test_held_out_scores_are_the_scores_of_each_users_held_out_items():
    """Every user's held-out items are scored (padding entries aside), in their listed order."""
    scores, train, test, _, test_sets = random_case(3)
    data = ranking_data(test, [train], chunk=4)
    got = rank_users(lambda u: jnp.asarray(scores)[u], data, (5,))
    users, tgt = np.asarray(data.users), np.asarray(data.targets)
    held = np.asarray(got.held_out_scores)
    for c, r in zip(*np.nonzero(np.asarray(data.mask))):
        items = tgt[c, r][tgt[c, r] >= 0]
        assert set(items.tolist()) == test_sets[users[c, r]]
        np.testing.assert_array_equal(held[c, r, : items.size], scores[users[c, r], items])
