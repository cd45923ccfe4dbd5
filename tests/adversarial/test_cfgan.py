"""CFGAN as a Recommender, ranked by the shared full-ranking evaluator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import reference_test_metrics

from jaxrec.adversarial.cfgan import most_popular_scores
from jaxrec.config import load_config
from jaxrec.evaluate import metric_sums, split_ranking
from jaxrec.experiment.gans import train_cfgan
from jaxrec.models.gan import CFGAN, Generator, cfgan_variables, init_generator


def test_cfgan_module_scores_are_generator_output(tiny_split):
    purchases = tiny_split.train.dense()
    g = Generator(tiny_split.n_items, (8,), conditional=True)
    gp = init_generator(g, jax.random.key(0), 0)
    model = CFGAN(tiny_split.n_users, tiny_split.n_items, (8,), 0)
    variables = cfgan_variables(gp, purchases)
    users = jnp.array([0, 3, 7])
    all_scores = model.apply(variables, users, method="score_all")
    np.testing.assert_allclose(all_scores, g.apply(gp, jnp.zeros((3, 0)), purchases[[0, 3, 7]]), rtol=1e-6)
    items = jnp.array([[1, 2], [5, 0], [9, 9]])
    np.testing.assert_allclose(
        model.apply(variables, users, items, method="score"), jnp.take_along_axis(all_scores, items, 1)
    )
    assert model.apply(variables, method="embeddings") == {}


def test_cfgan_trains_and_goes_through_the_shared_evaluator(tiny_split):
    cfg = load_config(
        None,
        [
            "gan.conditional=true",
            "gan.noise_dim=0",
            "gan.g_hidden=[8]",
            "gan.d_hidden=[8]",
            "gan.epochs=2",
            "gan.batch_size=16",
            "gan.report_every=1",
            "eval.ks=[5,10]",
        ],
    )
    res = train_cfgan(cfg, tiny_split, validate=False)
    assert set(res.metrics) == {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit", "mrr") for k in (5, 10)}
    # the same numbers from the shared evaluator's metric_sums with a hand-written score function
    g = Generator(tiny_split.n_items, (8,), conditional=True)
    purchases = jnp.asarray(tiny_split.train.dense())
    gp = res.fit.state.g.params
    score_all = lambda u: g.apply(gp, jnp.zeros((u.shape[0], 0)), purchases[u])  # noqa: E731
    sums, n = metric_sums(score_all, split_ranking(tiny_split, "test"), (5, 10))
    for k, v in sums.items():
        np.testing.assert_allclose(res.metrics[k], float(v / n), rtol=1e-5)
    # and from the definitions, one user at a time, on G's scores of every user
    reference = reference_test_metrics(score_all(jnp.arange(tiny_split.n_users)), tiny_split, (5, 10))
    for k, v in reference.items():
        assert res.metrics[k] == pytest.approx(v, abs=1e-6), k


def test_most_popular_scores_are_training_counts(tiny_split):
    pop = most_popular_scores(tiny_split)
    assert pop.shape == (tiny_split.n_items,)
    np.testing.assert_array_equal(pop, np.bincount(tiny_split.train.items, minlength=tiny_split.n_items))
