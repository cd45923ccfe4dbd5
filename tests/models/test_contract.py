"""The Recommender contract, for every model of the registry: what a Flax user types first works
(``Module.init`` / ``apply``), and ``embeddings``, ``score`` and ``score_all`` agree with each other
on the one embedding path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.config import ModelConfig
from jaxrec.experiment import build_model
from jaxrec.models import MODELS, embedding_tables, is_sequential
from jaxrec.train.state import init_params

SETTINGS = {"dim": 8, "layers": 2, "mlp_layers": (16, 8), "dropout": 0.1}


@pytest.fixture(scope="module")
def batch(tiny_split):
    rng = np.random.default_rng(0)
    users = jnp.asarray(rng.integers(0, tiny_split.n_users, 6), jnp.int32)
    items = jnp.asarray(rng.integers(0, tiny_split.n_items, (6, 3)), jnp.int32)
    return users, items


EMBEDDING_MODELS = sorted(n for n in MODELS if not is_sequential(MODELS[n]))
SEQUENCE_MODELS = sorted(n for n in MODELS if is_sequential(MODELS[n]))


@pytest.mark.parametrize("name", EMBEDDING_MODELS)
def test_every_registered_model_keeps_the_contract(tiny_split, batch, name):
    model, inputs = build_model(ModelConfig(name=name, **SETTINGS), tiny_split.train)
    users, items = batch
    key = jax.random.key(3)
    # flax's own init: the parameters a Flax user gets are the ones training starts from
    variables = model.init(key, users, items)
    assert set(variables) == {"params"}
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(init_params(model, key, inputs)), strict=True):
        np.testing.assert_array_equal(a, b)
    # the embedding path: every table under params/embeddings, user* tables per user, item* per item
    tables = embedding_tables(variables)
    assert tables and all(k.startswith(("user", "item")) for k in tables)
    for k, t in tables.items():
        assert t.shape == ((tiny_split.n_users if k.startswith("user") else tiny_split.n_items), 8)
    full = {**variables, **inputs}
    cache = model.apply(full, method="embeddings")
    pairs = model.apply(full, users, items)  # __call__ is score
    assert pairs.shape == items.shape
    one = model.apply(full, users, items[:, 0], method="score")
    assert one.shape == users.shape
    all_items = model.apply(full, users, cache, method="score_all")
    assert all_items.shape == (users.shape[0], tiny_split.n_items)
    # score of [B], score of [B, M] and score_all are the same function of (user, item)
    np.testing.assert_allclose(one, pairs[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pairs, jnp.take_along_axis(all_items, items, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.apply(full, users, items, cache, method="score"), pairs, rtol=1e-6)
    # the tables are the parameters: perturbing them changes the scores
    bumped = {**full, "params": {**full["params"], "embeddings": jax.tree.map(lambda t: t + 0.1, tables)}}
    assert not np.allclose(model.apply(bumped, users, items), pairs)


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_a_graph_model_applied_without_its_graph_is_one_clear_error(tiny_split, batch, name):
    from jaxrec.errors import JaxrecError

    model, _ = build_model(ModelConfig(name=name, **SETTINGS), tiny_split.train)
    variables = model.init(jax.random.key(0), *batch)
    with pytest.raises(JaxrecError, match="needs its graph"):
        model.apply(variables, *batch)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_every_sequence_model_keeps_the_sequence_contract(tiny_split, name):
    model, inputs = build_model(ModelConfig(name=name, max_len=5, heads=2, **SETTINGS), tiny_split.train)
    assert inputs == {}
    n = tiny_split.n_items
    rng = np.random.default_rng(0)
    history = jnp.asarray(rng.integers(0, n, (3, 5)), jnp.int32).at[0, :2].set(n)  # row 0 padded
    items = jnp.asarray(rng.integers(0, n, (3, 5, 4)), jnp.int32)
    key = jax.random.key(3)
    variables = model.init(key, history, items)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(init_params(model, key)), strict=True):
        np.testing.assert_array_equal(a, b)
    tables = embedding_tables(variables)
    assert all(k.startswith("item") for k in tables) and tables["item"].shape[0] > n  # + padding row
    cache = model.apply(variables, method="embeddings")
    assert cache["item"].shape == (n, 8)
    all_items = model.apply(variables, history, cache, method="score_all")
    assert all_items.shape == (3, n)
    emb = model.apply(variables, history, method="embed")
    assert emb.shape == (3, 5, 8)
    hidden = model.apply(variables, emb, history, method="encode")
    np.testing.assert_allclose(hidden, model.apply(variables, history, method="hidden"), rtol=1e-6)
    if model.objective == "next":  # score at the last position is score_all's
        at_last = model.apply(variables, history, items, method="score")[:, -1]
        np.testing.assert_allclose(at_last, jnp.take_along_axis(all_items, items[:, -1], 1), rtol=1e-5, atol=1e-5)
