"""LightGCN: every propagation kernel against a dense reference, isolated nodes, gradients;
LightGCN and NGCF through the shared experiment path and on ml-100k."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dense_normalised_adjacency, reference_test_metrics, small_graph

from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig, load_config
from jaxrec.data.graph import PROPAGATIONS, bipartite_graph, normalised_matrix
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError
from jaxrec.experiment import build_model, run
from jaxrec.models import embedding_tables
from jaxrec.models.propagation import propagate
from jaxrec.train.state import init_params

CONFIGS = Path(__file__).parent.parent.parent / "configs"


def dense_reference(train: Interactions, eu, ei, layers: int):
    """(1/(K+1)) sum_k Â^k E with the full (U+I) x (U+I) adjacency, in float64 numpy."""
    a_hat = dense_normalised_adjacency(train)
    e = np.concatenate([eu, ei]).astype(np.float64)
    total, cur = e.copy(), e
    for _ in range(layers):
        cur = a_hat @ cur
        total += cur
    total /= layers + 1
    return total[: train.n_users], total[train.n_users :]


@pytest.mark.parametrize("kernel", PROPAGATIONS)
def test_propagation_matches_dense_reference_and_isolated_nodes_get_zero(kernel):
    train = small_graph()  # the last user and the last item have no edge
    rng = np.random.default_rng(1)
    eu = rng.normal(size=(train.n_users, 8)).astype(np.float32)
    ei = rng.normal(size=(train.n_items, 8)).astype(np.float32)
    graph = jax.tree.map(jnp.asarray, bipartite_graph(train, kernel))
    out_u, out_i = jax.jit(lambda g, u, i: propagate(g, u, i, 3, kernel))(graph, eu, ei)
    ref_u, ref_i = dense_reference(train, eu, ei, 3)
    np.testing.assert_allclose(out_u, ref_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_i, ref_i, rtol=1e-5, atol=1e-6)
    # isolated nodes: finite, and only layer 0 contributes -- e / (K + 1); propagated layers give 0
    assert np.all(np.isfinite(out_u)) and np.all(np.isfinite(out_i))
    np.testing.assert_allclose(out_u[-1], eu[-1] / 4, rtol=1e-6)
    np.testing.assert_allclose(out_i[-1], ei[-1] / 4, rtol=1e-6)


def test_normalised_matrix_has_zero_rows_for_isolated_nodes():
    r = normalised_matrix(small_graph())
    assert np.all(np.isfinite(r))
    assert r[-1].sum() == 0 and r[:, -1].sum() == 0
    u, i = np.nonzero(r)
    deg_u, deg_i = (r > 0).sum(1), (r > 0).sum(0)
    np.testing.assert_allclose(r[u, i], 1 / np.sqrt(deg_u[u] * deg_i[i]), rtol=1e-6)


@functools.cache
def _score_grads(kernel: str):
    """Gradients of sum(score^2) w.r.t. the layer-0 tables, for one propagation kernel."""
    train = small_graph(isolated=False)
    cfg = ModelConfig(name="lightgcn", dim=8, layers=2, propagation=kernel, initializer="normal")
    model, inputs = build_model(cfg, train)
    params = init_params(model, jax.random.key(0), inputs)
    users = jnp.array([0, 3, 5])
    items = jnp.array([[1, 2], [0, 4], [7, 8]])

    def loss(p, inp):
        return jnp.sum(model.apply({**p, **inp}, users, items, method="score") ** 2)

    return embedding_tables(jax.jit(jax.grad(loss))(params, inputs))


@pytest.mark.parametrize("kernel", [k for k in PROPAGATIONS if k != "dense"])
def test_gradients_reach_layer0_and_match_across_kernels(kernel):
    grads = _score_grads(kernel)
    # propagation spreads the gradient beyond the batch's 3 users
    assert np.count_nonzero(np.abs(grads["user"]).sum(1)) > 3
    assert np.all(np.isfinite(grads["user"])) and np.all(np.isfinite(grads["item"]))
    # same gradient as the dense kernel (plain autodiff through two matmuls per layer)
    ref = _score_grads("dense")
    np.testing.assert_allclose(grads["user"], ref["user"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads["item"], ref["item"], rtol=1e-5, atol=1e-7)


def test_score_all_agrees_with_score_and_graph_is_an_input():
    train = small_graph(isolated=False)
    model, inputs = build_model(ModelConfig(name="lightgcn", dim=8, propagation="segment_sum_vjp"), train)
    assert set(inputs) == {"graph"}
    params = init_params(model, jax.random.key(0), inputs)
    assert set(embedding_tables(params)) == {"user", "item"}
    variables = {**params, **inputs}
    users = jnp.arange(train.n_users)
    score_all = jax.jit(lambda v, u: model.apply(v, u, method="score_all"))
    full = score_all(variables, users)
    assert full.shape == (train.n_users, train.n_items)
    items = jnp.tile(jnp.arange(train.n_items), (train.n_users, 1))
    score = jax.jit(lambda v, u, i: model.apply(v, u, i, method="score"))
    np.testing.assert_allclose(score(variables, users, items), full, rtol=1e-5)
    # the graph is an argument: a different graph changes the scores without retracing the model
    other = jax.tree.map(lambda x: x * 0 if x.dtype == jnp.float32 else x, inputs)
    zero_prop = score_all({**params, **other}, users)
    assert not np.allclose(zero_prop, full)


def test_gradients_vmap_over_parameter_sets():
    """The graph is an argument: one compiled gradient serves a batch of parameter sets."""
    train = small_graph(isolated=False)
    model, inputs = build_model(ModelConfig(name="lightgcn", dim=8, propagation="bcsr_vjp"), train)
    params = jax.vmap(lambda k: init_params(model, k, inputs))(jax.random.split(jax.random.key(0), 2))
    users, items = jnp.array([0, 1]), jnp.array([[1, 2], [3, 4]])

    def loss(p, inp):
        return jnp.sum(model.apply({**p, **inp}, users, items, method="score") ** 2)

    batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)))(params, inputs)
    for k in range(2):
        one = jax.grad(loss)(jax.tree.map(lambda x, k=k: x[k], params), inputs)
        np.testing.assert_allclose(
            embedding_tables(batched)["user"][k], embedding_tables(one)["user"], rtol=1e-5, atol=1e-7
        )


def test_unknown_propagation_is_a_config_error():
    with pytest.raises(JaxrecError, match="model.propagation"):
        build_model(ModelConfig(name="lightgcn", propagation="magic"), small_graph())
    with pytest.raises(JaxrecError, match="model.layers"):
        build_model(ModelConfig(name="lightgcn", layers=-1), small_graph())


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_graph_models_run_through_the_experiment_path(tiny_split, name):
    cfg = Config(
        name=f"tiny-{name}",
        model=ModelConfig(name=name, dim=8, layers=2, initializer="xavier_uniform"),
        train=TrainConfig(epochs=3, batch_size=64, lr=0.01, l2=1e-5),
        eval=EvalConfig(ks=(5, 10)),
    )
    result = run(cfg, split=tiny_split, write=False, progress=False)
    losses = [h["loss"] for h in result.fit.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert set(result.inputs) == {"graph"}
    # the reported metrics are the definitions' on the trained model's scores of every user
    variables = {**result.params, **result.inputs}
    scores = result.model.apply(variables, jnp.arange(tiny_split.n_users), method="score_all")
    for k, v in reference_test_metrics(scores, tiny_split, (5, 10)).items():
        assert result.metrics[k] == pytest.approx(v, abs=1e-5), k


@pytest.mark.integration
@pytest.mark.parametrize(
    "config, expected, epochs",
    [
        ("ml100k-lightgcn.yaml", {"name": "lightgcn", "layers": 2, "initializer": "xavier_uniform"}, 4),
        # RecBole's defaults; an NGCF epoch takes 4 s here (recall@20 0.180 after 2 epochs, 0.187 after 3)
        ("ml100k-ngcf.yaml", {"name": "ngcf", "layers": 3, "dropout": 0.1}, 2),
    ],
)
def test_ml100k_graph_models_few_epochs_far_above_chance(ml100k_split, config, expected, epochs):
    """The ml-100k protocol configs, a few (2 or 4) of their 20 epochs: already far above a random
    ranking."""
    cfg = load_config(CONFIGS / config, [f"train.epochs={epochs}", "eval.ks=[20]"])
    assert {k: getattr(cfg.model, k) for k in expected} == expected and cfg.train.l2 == 1e-5
    result = run(cfg, split=ml100k_split, write=False, progress=False)
    train = ml100k_split.train
    chance = np.mean(20 / (train.n_items - train.user_counts()))  # recall@20 of a random ranking
    assert result.metrics["recall@20"] > max(0.15, 10 * chance), result.metrics
    assert result.fit.history[-1]["loss"] < result.fit.history[0]["loss"]


@pytest.mark.parametrize("kernel", ["bcsr_vjp", "segment_sum_vjp"])
def test_members_on_their_own_graphs_equal_their_separate_propagations(kernel):
    """vmap over members that each bring a graph (data variants, padded to one capacity): the
    block-diagonal product equals every member's own propagation, forward and backward."""
    from jaxrec.models.propagation import normalise

    graphs = [small_graph(seed=s, isolated=False) for s in range(3)]
    cap = max(len(g) for g in graphs)
    padded = [
        normalise({k: jnp.asarray(v) for k, v in bipartite_graph(g, kernel, capacity=cap).items()}) for g in graphs
    ]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *padded)
    eu = jax.random.normal(jax.random.key(0), (3, graphs[0].n_users, 4))
    ei = jax.random.normal(jax.random.key(1), (3, graphs[0].n_items, 4))

    def loss(graph, u, i):
        return sum(jnp.sum(jnp.sin(x)) for x in propagate(graph, u, i, 2, kernel))

    together = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(1, 2))))(stacked, eu, ei)
    for m, g in enumerate(graphs):
        own = {k: jnp.asarray(v) for k, v in bipartite_graph(g, kernel).items()}
        value, grads = jax.value_and_grad(loss, argnums=(1, 2))(own, eu[m], ei[m])
        np.testing.assert_allclose(together[0][m], value, rtol=1e-5)
        for a, b in zip(grads, (together[1][0][m], together[1][1][m])):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
